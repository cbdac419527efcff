import CNNCore
import Datasets
import Foundation
import NN

/// The result of evaluating a model on a labelled set.
public struct EvaluationResult: Sendable {
    public var loss: Double
    public var accuracy: Double
    public var topK: [Int: Double]
    public var confusion: ConfusionMatrix
    /// (N) predicted class per image, in dataset order.
    public var predictions: [Int]
    public var seconds: Double
    /// (N) the three most probable classes per image with their probabilities, best first (for the
    /// report's misclassified examples); empty when not computed.
    public var top3: [[ClassProbability]] = []
    /// (N) the true class per image, in dataset order; empty when not recorded.
    public var labels: [Int] = []

    public func jsonObject() -> [String: Any] {
        let rows = confusion.perClass()
        return [
            "loss": loss, "accuracy": accuracy, "images": confusion.total,
            "top_k": Dictionary(uniqueKeysWithValues: topK.map { ("top\($0.key)", $0.value) }),
            "classes": confusion.classes, "confusion_matrix": confusion.counts,
            "per_class": zip(confusion.classes, rows).map { ["class": $0, "precision": $1.precision, "recall": $1.recall, "f1": $1.f1, "support": $1.support] },
        ]
    }
}

/// Evaluates `model` (eval mode) on `indices` of `dataset`: loss, accuracy, top-k, confusion matrix.
/// With `flipTTA`, the logits are averaged over the image and its horizontal mirror. With
/// `translateTTA`, the image's views (itself, or itself and its mirror) weigh half and the same views
/// of the image shifted one pixel down-right and one pixel up-left (reflect padding) a quarter each:
/// airbench's test-time augmentation (level 2 with the flip), six forward passes per batch. As in
/// airbench, the views' logits are averaged and the probabilities are the softmax of that mean.
public func evaluate(model: Model, dataset: ImageDataset, indices: [Int]? = nil, normalization: Normalization,
                     batchSize: Int = 256, flipTTA: Bool = false, translateTTA: Bool = false, topK: [Int] = [1, 5],
                     workers: Int = 2) throws -> EvaluationResult {
    let start = Date()
    var aug = AugmentationConfig.none
    aug.normalization = normalization
    let loader = try BatchLoader(dataset: dataset, indices: indices, batchSize: batchSize, shuffle: false,
                                 augmentation: aug, seed: 0, workers: workers)
    let runner = try StepRunner(model: model, optimizer: nil)
    let k = model.numClasses
    try require(k == dataset.numClasses, "the model has \(k) outputs but the data has \(dataset.numClasses) classes (\(dataset.source))")
    var probs: [Float] = []
    var labels: [Int] = []
    var lossSum = 0.0
    for batch in loader.batches(epoch: 0) {
        // The mean of the logits over the image and (flipTTA) its mirror.
        func views(_ images: HostTensor) throws -> [Float] {
            var z = try runner.logits(images: images)
            if flipTTA {
                let q = try runner.logits(images: flipped(images))
                for i in z.indices { z[i] = 0.5 * (z[i] + q[i]) }
            }
            return z
        }
        var p: [Float]
        if flipTTA || translateTTA {
            var z = try views(batch.images)
            if translateTTA {
                let a = try views(translated(batch.images, dy: 1, dx: 1)), b = try views(translated(batch.images, dy: -1, dx: -1))
                for i in z.indices { z[i] = 0.5 * z[i] + 0.25 * (a[i] + b[i]) }
            }
            p = softmaxRows(z, classes: k)
        } else {
            p = try runner.probabilities(images: batch.images)
        }
        for (r, l) in batch.labels.enumerated() {
            lossSum -= log(Double(max(p[r * k + Int(l)], 1e-12)))
            labels.append(Int(l))
        }
        probs += p
        loader.recycle(batch)
    }
    let n = labels.count
    var preds = [Int](repeating: 0, count: n)
    for i in 0..<n {
        var best = 0
        for j in 1..<k where probs[i * k + j] > probs[i * k + best] { best = j }
        preds[i] = best
    }
    let cm = ConfusionMatrix(classes: dataset.classNames, labels: labels, predictions: preds)
    var tk: [Int: Double] = [:]
    for t in topK where t <= k { tk[t] = topKAccuracy(scores: probs, classes: k, labels: labels, top: t) }
    var result = EvaluationResult(loss: lossSum / Double(max(n, 1)), accuracy: cm.accuracy, topK: tk, confusion: cm,
                                  predictions: preds, seconds: Date().timeIntervalSince(start))
    result.labels = labels
    result.top3 = (0..<n).map { i in
        let row = probs[(i * k)..<((i + 1) * k)]
        return (0..<k).sorted { row[i * k + $0] > row[i * k + $1] }.prefix(3).map { ClassProbability(index: $0, probability: row[i * k + $0]) }
    }
    return result
}

/// The softmax of each row of `logits` (rows of `classes`), in Double.
func softmaxRows(_ logits: [Float], classes k: Int) -> [Float] {
    var out = [Float](repeating: 0, count: logits.count)
    for r in 0..<(logits.count / k) {
        let row = logits[(r * k)..<((r + 1) * k)]
        let m = Double(row.max() ?? 0)
        var e = row.map { exp(Double($0) - m) }
        let sum = e.reduce(0, +)
        for j in 0..<k { e[j] /= sum; out[r * k + j] = Float(e[j]) }
    }
    return out
}

/// A class index and the probability the model gave it.
public struct ClassProbability: Sendable, Equatable {
    public var index: Int
    public var probability: Float
}

/// The batch mirrored left-right. images: (N, C, H, W).
func flipped(_ images: HostTensor) -> HostTensor {
    var out = images
    let w = images.shape[3]
    let rows = images.count / w
    images.values.withUnsafeBufferPointer { src in
        out.values.withUnsafeMutableBufferPointer { dst in
            for r in 0..<rows {
                for x in 0..<w { dst[r * w + x] = src[r * w + (w - 1 - x)] }
            }
        }
    }
    return out
}

/// The batch shifted by (dy, dx) pixels with reflect padding (PyTorch's `F.pad(mode="reflect")`
/// then a crop): out[y][x] = in[reflect(y - dy)][reflect(x - dx)]. images: (N, C, H, W), |dy| < H, |dx| < W.
func translated(_ images: HostTensor, dy: Int, dx: Int) -> HostTensor {
    let h = images.shape[2], w = images.shape[3]
    precondition(abs(dy) < h && abs(dx) < w, "translation (\(dy), \(dx)) of a \(h)x\(w) image")
    func reflect(_ i: Int, _ n: Int) -> Int { i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i) }
    let rowMap = (0..<h).map { reflect($0 - dy, h) }, colMap = (0..<w).map { reflect($0 - dx, w) }
    var out = images
    let planes = images.count / (h * w)
    images.values.withUnsafeBufferPointer { src in
        out.values.withUnsafeMutableBufferPointer { dst in
            for p in 0..<planes {
                let base = p * h * w
                for y in 0..<h {
                    let s = base + rowMap[y] * w, d = base + y * w
                    for x in 0..<w { dst[d + x] = src[s + colMap[x]] }
                }
            }
        }
    }
    return out
}
