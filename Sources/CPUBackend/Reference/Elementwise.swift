import CNNCore

// Reference elementwise ops over flat buffers of `count` elements, computed in T.
// Where the Backend allows it, an output may be the very same buffer as an input (in place).

extension CPUBackend.Reference {
    /// ReLU of one value: v if v > 0, else +0. NaN propagates (as PyTorch); -0 becomes +0.
    @inline(__always)
    package static func relu<V: FloatingPoint>(_ v: V) -> V { v > 0 || v.isNaN ? v : 0 }

    /// A fused activation applied to one value.
    @inline(__always)
    package static func activate<V: FloatingPoint>(_ v: V, _ activation: Activation) -> V {
        switch activation {
        case .identity: v
        case .relu: relu(v)
        }
    }

    /// y = relu(x). x, y: (count); y may be x.
    package static func relu<T: BinaryFloatingPoint>(x: UnsafePointer<T>, y: UnsafeMutablePointer<T>, count: Int) {
        for i in 0..<count { y[i] = relu(x[i]) }
    }

    /// dx = y > 0 ? dy : 0, where y is the ReLU's output. y, dy, dx: (count); dx may be dy.
    package static func reluBackward<T: BinaryFloatingPoint>(
        y: UnsafePointer<T>, dy: UnsafePointer<T>, dx: UnsafeMutablePointer<T>, count: Int
    ) {
        for i in 0..<count { dx[i] = y[i] > 0 ? dy[i] : 0 }
    }

    /// Inverted dropout. x, y, mask: (count); y may be x; count <= 2^32.
    /// key = CounterRNG.key(seed: seed); element i is kept when CounterRNG.uniform(key, UInt32(i)) >= p:
    /// mask[i] = kept ? 1 / (1 - p) : 0 (computed in T), y[i] = x[i] * mask[i]. p = 0 is the identity.
    package static func dropoutForward<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, y: UnsafeMutablePointer<T>, mask: UnsafeMutablePointer<T>, count: Int,
        probability p: T, seed: UInt64
    ) {
        let key = CounterRNG.key(seed: seed)
        let keepScale = 1 / (1 - p)
        for i in 0..<count {
            let u = CounterRNG.uniform(key: key, index: UInt32(i))
            let m: T = Double(u) >= Double(p) ? keepScale : 0
            mask[i] = m
            y[i] = x[i] * m
        }
    }

    /// y = a + b. a, b, y: (count); y may be a or b.
    package static func add<T: BinaryFloatingPoint>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, y: UnsafeMutablePointer<T>, count: Int) {
        for i in 0..<count { y[i] = a[i] + b[i] }
    }

    /// y = a * b elementwise. a, b, y: (count); y may be a or b.
    package static func mul<T: BinaryFloatingPoint>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, y: UnsafeMutablePointer<T>, count: Int) {
        for i in 0..<count { y[i] = a[i] * b[i] }
    }

    /// y = alpha * x. x, y: (count); y may be x.
    package static func scale<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, by alpha: T, y: UnsafeMutablePointer<T>, count: Int) {
        for i in 0..<count { y[i] = alpha * x[i] }
    }

    /// y += alpha * x. x, y: (count); x may be y.
    package static func axpy<T: BinaryFloatingPoint>(alpha: T, x: UnsafePointer<T>, y: UnsafeMutablePointer<T>, count: Int) {
        for i in 0..<count { y[i] += alpha * x[i] }
    }

    /// Every element of t: (count) set to value.
    package static func fill<T: BinaryFloatingPoint>(_ t: UnsafeMutablePointer<T>, value: T, count: Int) {
        for i in 0..<count { t[i] = value }
    }
}
