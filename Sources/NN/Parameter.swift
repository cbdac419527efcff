import CNNCore

/// How a parameter is initialised (PyTorch's defaults).
public enum Initializer: Sendable {
    /// U(-bound, bound).
    case uniform(bound: Float)
    case constant(Float)
    /// U(-bound, bound), then the first min(Cout, Cin) filters of a (Cout, Cin, K, K) weight set to
    /// the identity (`torch.nn.init.dirac_(w[:Cin])`, as airbench initialises its convolutions): at
    /// initialisation the layer passes its input channels through and adds fresh random features.
    case uniformThenDirac(bound: Float, outChannels: Int, inChannels: Int, kernel: Int)
    /// PyTorch's default for Conv2d / Linear weights, kaiming_uniform_(a = sqrt(5)):
    /// bound = gain * sqrt(3 / fanIn) with gain = sqrt(2 / (1 + 5)), i.e. 1 / sqrt(fanIn).
    public static func kaimingUniformDefault(fanIn: Int) -> Initializer { .uniform(bound: 1 / Float(fanIn).squareRoot()) }
    /// PyTorch's default bias init for Conv2d / Linear: U(-1/sqrt(fanIn), 1/sqrt(fanIn)).
    public static func biasDefault(fanIn: Int) -> Initializer { .uniform(bound: fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0) }

    func values(count: Int, rng: inout SeededRNG) -> [Float] {
        switch self {
        case .uniform(let b): return (0..<count).map { _ in rng.uniform(-b, b) }
        case .constant(let c): return [Float](repeating: c, count: count)
        case let .uniformThenDirac(b, cout, cin, k):
            precondition(count == cout * cin * k * k, "dirac initialiser: \(count) values for a (\(cout), \(cin), \(k), \(k)) weight")
            var v = Initializer.uniform(bound: b).values(count: count, rng: &rng)
            let filter = cin * k * k
            for o in 0..<min(cout, cin) {
                for j in 0..<filter { v[o * filter + j] = 0 }
                v[o * filter + o * k * k + (k / 2) * k + k / 2] = 1
            }
            return v
        }
    }
}

/// A trainable tensor and its gradient. Both are views into the model's flat parameter and
/// gradient buffers (one launch updates every parameter), bound when the model is built.
public final class Parameter {
    public let shape: Shape
    public let initializer: Initializer
    /// Whether weight decay applies (PyTorch applies it to every parameter by default).
    public var decay: Bool
    /// Multiplies the optimizer's learning rate for this parameter (a parameter group, as in
    /// PyTorch's `param_groups`); 0 freezes it (it keeps its initial value; its gradient is still
    /// computed). Set by the model (a frozen BatchNorm scale) or the trainer (`--bn-bias-lr-scale`).
    public var learningRateScale: Float = 1
    /// Multiplies the optimizer's weight decay for this parameter.
    public var weightDecayScale: Float = 1
    public internal(set) var value: Tensor!
    public internal(set) var grad: Tensor!
    /// Offset of this parameter in the flat buffers, in elements.
    public internal(set) var flatOffset = 0

    public init(shape: Shape, initializer: Initializer, decay: Bool = true) {
        self.shape = shape
        self.initializer = initializer
        self.decay = decay
    }
}

/// A non-trainable tensor that belongs to the model's state (e.g. BatchNorm running statistics).
public final class StateBuffer {
    public let shape: Shape
    public let initial: Float
    public internal(set) var value: Tensor!
    public init(shape: Shape, initial: Float) {
        self.shape = shape
        self.initial = initial
    }
}
