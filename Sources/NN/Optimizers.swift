import CNNCore

/// An optimizer over a model's flat parameter buffer: one launch updates every parameter.
public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    /// Steps taken so far.
    var stepCount: Int { get }
    /// Applies one update from the model's current gradients.
    func step() throws
    /// Optimizer state for checkpoints (flat tensors named as in `loadState`), plus the step count.
    func state() throws -> (tensors: [(String, HostTensor)], step: Int)
    func loadState(tensors: [(String, HostTensor)], step: Int) throws
    var summary: String { get }
}

/// torch.optim.SGD (momentum, Nesterov, weight decay).
public final class SGD: Optimizer {
    public let model: Model
    public var hyper: SGDHyper
    public private(set) var stepCount = 0
    private let momentumBuffer: Tensor?

    public init(model: Model, hyper: SGDHyper) throws {
        try require(hyper.learningRate > 0, "learning rate must be positive, got \(hyper.learningRate)")
        try require(!hyper.nesterov || (hyper.momentum > 0 && hyper.dampening == 0), "Nesterov momentum needs momentum > 0 and dampening 0")
        self.model = model
        self.hyper = hyper
        momentumBuffer = hyper.momentum != 0 ? try model.backend.makeTensor(model.flatParameters.shape) : nil
    }
    public var learningRate: Float {
        get { hyper.learningRate }
        set { hyper.learningRate = newValue }
    }
    public var summary: String {
        "SGD(lr \(hyper.learningRate), momentum \(hyper.momentum)\(hyper.nesterov ? ", nesterov" : ""), weight decay \(hyper.weightDecay))"
    }
    public func step() throws {
        try model.backend.sgdStep(params: model.flatParameters, grads: model.flatGradients, momentumBuffer: momentumBuffer, hyper: hyper)
        stepCount += 1
    }
    public func state() throws -> (tensors: [(String, HostTensor)], step: Int) {
        (try momentumBuffer.map { [("momentum_buffer", try model.backend.host($0))] } ?? [], stepCount)
    }
    public func loadState(tensors: [(String, HostTensor)], step: Int) throws {
        stepCount = step
        guard let momentumBuffer else { return }
        guard let t = tensors.first(where: { $0.0 == "momentum_buffer" })?.1, t.count == momentumBuffer.count else {
            throw CNNError.invalidData("optimizer state: missing or mis-sized momentum_buffer (expected \(momentumBuffer.count) values)")
        }
        try model.backend.write(t.values, to: momentumBuffer)
    }
}

/// torch.optim.Adam, or AdamW when `hyper.decoupled`.
public final class Adam: Optimizer {
    public let model: Model
    public var hyper: AdamHyper
    public private(set) var stepCount = 0
    private let m: Tensor
    private let v: Tensor

    public init(model: Model, hyper: AdamHyper) throws {
        try require(hyper.learningRate > 0, "learning rate must be positive, got \(hyper.learningRate)")
        try require((0..<1).contains(hyper.beta1) && (0..<1).contains(hyper.beta2), "Adam betas must be in [0, 1), got \(hyper.beta1), \(hyper.beta2)")
        self.model = model
        self.hyper = hyper
        m = try model.backend.makeTensor(model.flatParameters.shape)
        v = try model.backend.makeTensor(model.flatParameters.shape)
    }
    public var learningRate: Float {
        get { hyper.learningRate }
        set { hyper.learningRate = newValue }
    }
    public var summary: String {
        "\(hyper.decoupled ? "AdamW" : "Adam")(lr \(hyper.learningRate), betas (\(hyper.beta1), \(hyper.beta2)), weight decay \(hyper.weightDecay))"
    }
    public func step() throws {
        stepCount += 1
        try model.backend.adamStep(params: model.flatParameters, grads: model.flatGradients, m: m, v: v, hyper: hyper, step: stepCount)
    }
    public func state() throws -> (tensors: [(String, HostTensor)], step: Int) {
        ([("exp_avg", try model.backend.host(m)), ("exp_avg_sq", try model.backend.host(v))], stepCount)
    }
    public func loadState(tensors: [(String, HostTensor)], step: Int) throws {
        for (name, t) in [("exp_avg", m), ("exp_avg_sq", v)] {
            guard let h = tensors.first(where: { $0.0 == name })?.1, h.count == t.count else {
                throw CNNError.invalidData("optimizer state: missing or mis-sized \(name) (expected \(t.count) values)")
            }
            try model.backend.write(h.values, to: t)
        }
        stepCount = step
    }
}
