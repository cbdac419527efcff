import CNNCore
import Foundation

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
        for run in try model.parameterRuns() {
            var h = hyper
            h.learningRate *= run.learningRateScale
            h.weightDecay *= run.weightDecayScale
            try model.backend.sgdStep(params: run.view(model.flatParameters), grads: run.view(model.flatGradients),
                                      momentumBuffer: momentumBuffer.map(run.view), hyper: h)
        }
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
        for run in try model.parameterRuns() {
            var h = hyper
            h.learningRate *= run.learningRateScale
            h.weightDecay *= run.weightDecayScale
            try model.backend.adamStep(params: run.view(model.flatParameters), grads: run.view(model.flatGradients),
                                       m: run.view(m), v: run.view(v), hyper: h, step: stepCount)
        }
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

/// A stretch of the flat parameter buffer whose parameters share their learning-rate and weight-decay
/// scales (PyTorch's parameter groups, laid out as runs of the model's parameter order).
struct ParameterRun: Equatable {
    var range: Range<Int>
    var learningRateScale: Float
    var weightDecayScale: Float
    /// The run's part of a flat (parameterCount) tensor.
    func view(_ flat: Tensor) -> Tensor {
        range.count == flat.count ? flat : flat.view(elementOffset: range.lowerBound, shape: [range.count])
    }
}

extension Model {
    /// The runs of parameters the optimizer updates, in flat order; frozen parameters (learning-rate
    /// scale 0) are left out. With every scale 1 this is one run over the whole buffer: one launch.
    func parameterRuns() throws -> [ParameterRun] {
        var runs: [ParameterRun] = []
        for (name, p) in parameters {
            try require(p.learningRateScale >= 0 && p.learningRateScale.isFinite && p.weightDecayScale >= 0 && p.weightDecayScale.isFinite,
                        "parameter \(name): learning-rate and weight-decay scales must be finite and >= 0, got \(p.learningRateScale), \(p.weightDecayScale)")
            let r = p.flatOffset..<(p.flatOffset + p.shape.count)
            if let last = runs.last, last.range.upperBound == r.lowerBound,
               last.learningRateScale == p.learningRateScale, last.weightDecayScale == p.weightDecayScale {
                runs[runs.count - 1].range = last.range.lowerBound..<r.upperBound
            } else {
                runs.append(ParameterRun(range: r, learningRateScale: p.learningRateScale, weightDecayScale: p.weightDecayScale))
            }
        }
        if runs.isEmpty { return [ParameterRun(range: 0..<flatParameters.count, learningRateScale: 1, weightDecayScale: 1)] }
        return runs.filter { $0.learningRateScale != 0 }
    }
}

/// Lookahead with an EMA of the weights, as airbench does it: every `every` steps the slow copy moves
/// toward the fast weights, slow = d·slow + (1 - d)·fast, and the fast weights restart from it
/// (fast = slow). The decay ramps as d = 0.95^every · (step / totalSteps)^3, so early training runs
/// almost plain SGD and late training averages heavily; after the last step the model holds the slow
/// copy. BatchNorm running statistics (every state buffer) are averaged the same way.
/// The slow copy is saved with the optimizer state, so `--resume` continues exactly.
public final class Lookahead: Optimizer {
    public let inner: any Optimizer
    public let model: Model
    public let every: Int
    public let totalSteps: Int
    private let slowParameters: Tensor
    private let slowBuffers: [(name: String, slow: Tensor, live: Tensor)]

    /// Wraps `inner` (which updates `model`), starting the slow copy from the model's current weights.
    public init(wrapping inner: any Optimizer, model: Model, every: Int, totalSteps: Int) throws {
        try require(every >= 1, "lookahead: the period must be at least 1 step, got \(every)")
        try require(totalSteps >= 1, "lookahead: the run must have at least 1 step, got \(totalSteps)")
        self.inner = inner
        self.model = model
        self.every = every
        self.totalSteps = totalSteps
        slowParameters = try model.backend.clone(model.flatParameters)
        slowBuffers = try model.buffers.map { (name: $0.name, slow: try model.backend.clone($0.buffer.value), live: $0.buffer.value) }
    }
    public var learningRate: Float {
        get { inner.learningRate }
        set { inner.learningRate = newValue }
    }
    public var stepCount: Int { inner.stepCount }
    public var summary: String { inner.summary + ", lookahead every \(every) steps (EMA decay 0.95^\(every)·(t/T)^3)" }

    /// The decay of the update after step `step` (1-based).
    public func decay(afterStep step: Int) -> Float {
        Float(pow(0.95, Double(every)) * pow(min(Double(step) / Double(totalSteps), 1), 3))
    }

    public func step() throws {
        try inner.step()
        let t = inner.stepCount
        if t % every == 0 { try update(decay: decay(afterStep: t)) }
        if t == totalSteps { try update(decay: 1) }   // the run ends on the slow weights
    }

    /// slow = d·slow + (1 - d)·fast; fast = slow.
    func update(decay d: Float) throws {
        let b = model.backend
        for (slow, live) in [(slowParameters, model.flatParameters)] + slowBuffers.map({ ($0.slow, $0.live) }) {
            if d != 1 {
                try b.scale(slow, by: d, y: slow)
                try b.axpy(alpha: 1 - d, x: live, y: slow)
            }
            try b.copy(slow, to: live)
        }
    }

    public func state() throws -> (tensors: [(String, HostTensor)], step: Int) {
        let s = try inner.state()
        var tensors = s.tensors
        tensors.append(("lookahead.parameters", try model.backend.host(slowParameters)))
        for e in slowBuffers { tensors.append(("lookahead." + e.name, try model.backend.host(e.slow))) }
        return (tensors, s.step)
    }
    public func loadState(tensors: [(String, HostTensor)], step: Int) throws {
        try inner.loadState(tensors: tensors.filter { !$0.0.hasPrefix("lookahead.") }, step: step)
        for (name, t) in [("parameters", slowParameters)] + slowBuffers.map({ ($0.name, $0.slow) }) {
            guard let h = tensors.first(where: { $0.0 == "lookahead." + name })?.1, h.count == t.count else {
                throw CNNError.invalidData("optimizer state: missing or mis-sized lookahead.\(name) (expected \(t.count) values); "
                    + "was the checkpoint written by a run without --lookahead?")
            }
            try model.backend.write(h.values, to: t)
        }
    }
}
