import CNNCore
import NN

/// Runs training and evaluation steps of one model on its device.
///
/// A training step uploads the batch (images, labels, and soft targets for MixUp/CutMix), runs
/// forward, loss, backward and the optimizer on the device, and adds the batch's summed loss and
/// correct-count to two device-side accumulators. Nothing comes back to the host until
/// `takeTotals()` — so the steady-state step moves the input batch in and nothing out.
public final class StepRunner {
    public let model: Model
    public let optimizer: Optimizer?
    public let loss: SoftmaxCrossEntropyLoss
    public var backend: any Backend { model.backend }
    /// Clip the global gradient norm to this value (nil: no clipping). Costs one scalar read per step.
    public var maxGradNorm: Float?
    /// Data-parallel training: gradients averaged across ranks before the optimizer step, and
    /// the totals summed over ranks (see `StepDistribution`). nil: one process.
    package var distribution: (any StepDistribution)?

    private let lossSum: Tensor       // (1)
    private let correctSum: Tensor    // (1)
    private var seen = 0
    private var imageCache = TensorCache(), labelCache = TensorCache(), softCache = TensorCache()
    private let scratch: Tensor       // (1)
    private var predictionCache = TensorCache()
    /// Counts the resets of the totals (see `peekTotalsWithoutWaiting`).
    private var totalsGeneration = 0

    public init(model: Model, optimizer: Optimizer?, labelSmoothing: Float = 0) throws {
        self.model = model
        self.optimizer = optimizer
        loss = try SoftmaxCrossEntropyLoss(backend: model.backend, labelSmoothing: labelSmoothing)
        lossSum = try model.backend.makeTensor([1])
        correctSum = try model.backend.makeTensor([1])
        scratch = try model.backend.makeTensor([1])
    }

    func upload(images: HostTensor, labels: [Int32], soft: HostTensor?) throws -> (Tensor, Tensor, Tensor?) {
        let n = images.shape[0]
        try require(labels.count == n, "batch has \(n) images but \(labels.count) labels")
        let x = try imageCache.tensor(images.shape, on: backend)
        try backend.write(images.values, to: x)
        let y = try labelCache.tensor([n], dtype: .int32, on: backend)
        try backend.write(labels, to: y)
        var s: Tensor?
        if let soft {
            try require(soft.shape == [n, model.numClasses], "soft targets \(soft.shape) do not match (\(n), \(model.numClasses))")
            let t = try softCache.tensor(soft.shape, on: backend)
            try backend.write(soft.values, to: t)
            s = t
        }
        return (x, y, s)
    }

    /// One optimisation step. `seed` drives this step's dropout masks.
    public func trainStep(images: HostTensor, labels: [Int32], softTargets: HostTensor? = nil, seed: UInt64) throws {
        guard optimizer != nil else { throw CNNError.invalidArgument("trainStep needs an optimizer") }
        let (x, y, soft) = try upload(images: images, labels: labels, soft: softTargets)
        try trainStep(x: x, y: y, soft: soft, count: labels.count, seed: seed)
    }

    /// One optimisation step on a batch already on the device (`DeviceFeed`).
    package func trainStep(x: Tensor, y: Tensor, soft: Tensor?, count: Int, seed: UInt64) throws {
        guard let optimizer else { throw CNNError.invalidArgument("trainStep needs an optimizer") }
        try distribution?.beginStep(count: count)
        let logits = try model.forward(x, training: true, seed: seed)
        let targets: LossTargets = soft.map { .soft($0) } ?? .labels(y)
        let dLogits: Tensor?
        if Fusion.enabled {
            dLogits = try loss(logits, targets, labels: y, lossSum: lossSum, correctSum: correctSum).dLogits
        } else {
            let (losses, d) = try loss(logits, targets)
            try backend.sum(losses, into: lossSum, accumulate: true)
            try backend.countCorrect(logits: logits, labels: y, into: correctSum, accumulate: true)
            dLogits = d
        }
        seen += count
        try model.backward(dLogits!)
        try distribution?.finishGradients()
        if let maxGradNorm {
            try backend.sumOfSquares(model.flatGradients, into: scratch, accumulate: false)
            let norm = try backend.floats(scratch)[0].squareRoot()
            if norm.isFinite && norm > maxGradNorm {
                try backend.scale(model.flatGradients, by: maxGradNorm / (norm + 1e-6), y: model.flatGradients)
            }
        }
        try optimizer.step()
    }

    /// Forward in eval mode; accumulates loss and correct-count. Returns the logits (N, K) on the device.
    @discardableResult
    public func evalStep(images: HostTensor, labels: [Int32]) throws -> Tensor {
        let (x, y, _) = try upload(images: images, labels: labels, soft: nil)
        return try evalStep(x: x, y: y, count: labels.count)
    }

    /// `evalStep` on a batch already on the device (`DeviceFeed`).
    @discardableResult
    package func evalStep(x: Tensor, y: Tensor, count: Int) throws -> Tensor {
        let logits = try model.forward(x, training: false)
        let (losses, _) = try loss(logits, .labels(y), gradient: false)
        try backend.sum(losses, into: lossSum, accumulate: true)
        try backend.countCorrect(logits: logits, labels: y, into: correctSum, accumulate: true)
        seen += count
        return logits
    }

    /// The model's outputs (N, K) for a batch, on the host.
    public func logits(images: HostTensor) throws -> [Float] {
        let x = try imageCache.tensor(images.shape, on: backend)
        try backend.write(images.values, to: x)
        return try backend.floats(try model.forward(x, training: false))
    }

    /// Class probabilities (N, K) for a batch, on the host.
    public func probabilities(images: HostTensor) throws -> [Float] {
        let x = try imageCache.tensor(images.shape, on: backend)
        try backend.write(images.values, to: x)
        let logits = try model.forward(x, training: false)
        let p = try predictionCache.tensor(logits.shape, on: backend)
        try backend.softmax(x: logits, y: p)
        return try backend.floats(p)
    }

    /// Mean loss, accuracy and sample count since the last call (reads two scalars), then resets.
    public func takeTotals() throws -> (loss: Double, accuracy: Double, count: Int) {
        defer { seen = 0; totalsGeneration += 1 }
        if let distribution {
            // Every rank calls this at the same points (a collective), also with nothing seen.
            var sums = [0, 0, Double(seen)]
            if seen > 0 {
                sums[0] = Double(try backend.floats(lossSum)[0])
                sums[1] = Double(try backend.floats(correctSum)[0])
                try backend.fill(lossSum, value: 0)
                try backend.fill(correctSum, value: 0)
            }
            try distribution.sumOverRanks(&sums)
            guard sums[2] > 0 else { return (0, 0, 0) }
            return (sums[0] / sums[2], sums[1] / sums[2], Int(sums[2]))
        }
        guard seen > 0 else { return (0, 0, 0) }
        let l = Double(try backend.floats(lossSum)[0])
        let c = Double(try backend.floats(correctSum)[0])
        try backend.fill(lossSum, value: 0)
        try backend.fill(correctSum, value: 0)
        return (l / Double(seen), c / Double(seen), seen)
    }

    /// The raw device-side sums (loss, correct count) and the image count so far, for a mid-epoch
    /// checkpoint; `restoreTotals` puts them back, so the resumed epoch's totals are bit-identical.
    func rawTotals() throws -> (lossSum: Float, correctSum: Float, seen: Int) {
        if let distribution {
            // The sums over all ranks (a collective: every rank reaches it at the same point).
            var sums = [0, 0, Double(seen)]
            if seen > 0 { sums[0] = Double(try backend.floats(lossSum)[0]); sums[1] = Double(try backend.floats(correctSum)[0]) }
            try distribution.sumOverRanks(&sums)
            return (Float(sums[0]), Float(sums[1]), Int(sums[2]))
        }
        guard seen > 0 else { return (0, 0, 0) }
        return (try backend.floats(lossSum)[0], try backend.floats(correctSum)[0], seen)
    }

    func restoreTotals(lossSum l: Float, correctSum c: Float, seen n: Int) throws {
        // Saved as sums over all ranks: one rank takes them back, so that they count once.
        if let distribution, !distribution.takesRestoredTotals { return try resetTotals() }
        try backend.write([l], to: lossSum)
        try backend.write([c], to: correctSum)
        seen = n
        totalsGeneration += 1
    }

    /// Forgets the totals so far (after `--on-nan skip` rolled the weights back).
    func resetTotals() throws {
        try backend.fill(lossSum, value: 0)
        try backend.fill(correctSum, value: 0)
        seen = 0
        totalsGeneration += 1
    }

    /// Whether every weight is finite: the sum of squares (one scalar read), and only when that
    /// overflows, a scan of the weights on the host.
    func parametersAreFinite() throws -> Bool {
        try backend.sumOfSquares(model.flatParameters, into: scratch, accumulate: false)
        if try backend.floats(scratch)[0].isFinite { return true }
        return try !backend.floats(model.flatParameters).contains { !$0.isFinite }
    }

    /// The loss sum so far (one scalar read): non-finite once any step's loss was.
    func lossSumSoFar() throws -> Float {
        seen > 0 ? try backend.floats(lossSum)[0] : 0
    }

    /// For a progress bar: the mean loss and accuracy of a recent read that has completed, without
    /// waiting (a non-blocking read of the totals is enqueued for a later call). Backends without
    /// non-blocking reads (the CPU) answer `peekTotals()`. nil until a read of this epoch's totals
    /// has completed.
    func peekTotalsWithoutWaiting() throws -> (loss: Double, accuracy: Double)? {
        guard seen > 0 else { return (0, 0) }
        guard let device = backend as? any DeviceBatchInputProvider else { return try peekTotals() }
        // The tag: which totals (reset generation) and how many images they held when read.
        guard let r = try device.readScalarsLater(lossSum, correctSum, tag: totalsGeneration << 32 | seen),
              r.2 >> 32 == totalsGeneration, r.2 & 0xFFFF_FFFF > 0 else { return nil }
        let n = Double(r.2 & 0xFFFF_FFFF)
        return (Double(r.0) / n, Double(r.1) / n)
    }

    /// Mean loss and accuracy so far without resetting (for a progress bar; reads two scalars).
    public func peekTotals() throws -> (loss: Double, accuracy: Double) {
        guard seen > 0 else { return (0, 0) }
        return (Double(try backend.floats(lossSum)[0]) / Double(seen), Double(try backend.floats(correctSum)[0]) / Double(seen))
    }
}

/// How a training step takes part in data-parallel training (implemented by `cnn train
/// --distributed`). Every rank makes the same calls in the same order: each is a collective.
package protocol StepDistribution: AnyObject {
    /// Before the step's forward: `count` images on this rank.
    func beginStep(count: Int) throws
    /// After backward: the gradients hold the average over all ranks' images.
    func finishGradients() throws
    /// Element-wise sum over ranks, in place.
    func sumOverRanks(_ values: inout [Double]) throws
    /// Whether this rank takes back the (all-rank) sums of a mid-epoch checkpoint: one rank does.
    var takesRestoredTotals: Bool { get }
}
