import CNNCore

/// How a parameter is initialised (PyTorch's defaults).
public enum Initializer: Sendable {
    /// U(-bound, bound).
    case uniform(bound: Float)
    case constant(Float)
    /// PyTorch's default for Conv2d / Linear weights, kaiming_uniform_(a = sqrt(5)):
    /// bound = gain * sqrt(3 / fanIn) with gain = sqrt(2 / (1 + 5)), i.e. 1 / sqrt(fanIn).
    public static func kaimingUniformDefault(fanIn: Int) -> Initializer { .uniform(bound: 1 / Float(fanIn).squareRoot()) }
    /// PyTorch's default bias init for Conv2d / Linear: U(-1/sqrt(fanIn), 1/sqrt(fanIn)).
    public static func biasDefault(fanIn: Int) -> Initializer { .uniform(bound: fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0) }

    func values(count: Int, rng: inout SeededRNG) -> [Float] {
        switch self {
        case .uniform(let b): return (0..<count).map { _ in rng.uniform(-b, b) }
        case .constant(let c): return [Float](repeating: c, count: count)
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
