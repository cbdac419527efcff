import CNNCore

// Reference reductions. Sums accumulate in Double and are rounded once.

extension CPUBackend.Reference {
    /// out[0] = sum of x (or out[0] += it when `accumulate`). x: (count), out: (1).
    package static func sum<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, count: Int, into out: UnsafeMutablePointer<T>, accumulate: Bool) {
        var acc = accumulate ? Double(out[0]) : 0
        for i in 0..<count { acc += Double(x[i]) }
        out[0] = T(acc)
    }

    /// out[0] = sum of x^2 (or out[0] += it when `accumulate`). x: (count), out: (1).
    package static func sumOfSquares<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, count: Int, into out: UnsafeMutablePointer<T>, accumulate: Bool) {
        var acc = accumulate ? Double(out[0]) : 0
        for i in 0..<count { let v = Double(x[i]); acc += v * v }
        out[0] = T(acc)
    }

    /// Index of the first maximum of row x: (K), K >= 1. A NaN counts as larger than any number
    /// (the first NaN wins, as PyTorch's argmax).
    @inline(__always)
    static func rowArgmax<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, _ classes: Int) -> Int {
        var best = 0
        for k in 1..<max(classes, 1) where isGreater(x[k], than: x[best]) { best = k }
        return best
    }

    /// out[r] = index of the first maximum of row r (see `rowArgmax`). x: (N, K), K >= 1; out: (N) int32.
    package static func argmax<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, rows: Int, classes: Int, into out: UnsafeMutablePointer<Int32>) {
        for r in 0..<rows { out[r] = Int32(rowArgmax(x + r * classes, classes)) }
    }

    /// out[0] (= or += when `accumulate`) the number of rows r with argmax(logits[r]) == labels[r].
    /// logits: (N, K), K >= 1; labels: (N) int32 (a label outside 0..<K never matches); out: (1).
    package static func countCorrect<T: BinaryFloatingPoint>(
        logits: UnsafePointer<T>, labels: UnsafePointer<Int32>, rows: Int, classes: Int,
        into out: UnsafeMutablePointer<T>, accumulate: Bool
    ) {
        var correct = 0
        for r in 0..<rows where rowArgmax(logits + r * classes, classes) == Int(labels[r]) { correct += 1 }
        out[0] = T((accumulate ? Double(out[0]) : 0) + Double(correct))
    }
}
