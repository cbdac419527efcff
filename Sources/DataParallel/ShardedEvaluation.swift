import CNNCore
import Datasets
import Foundation
import NN
import Training

/// Evaluates on `dataset` with each rank taking every N-th image (`DataShard.slice`), then adds up
/// over the ranks: every image is counted exactly once, and the result (loss, accuracy, top-k,
/// confusion matrix, predictions in dataset order) is the one-process result, on every rank.
package func shardedEvaluate(world: MPIWorld, model: Model, dataset: ImageDataset, normalization: Normalization,
                             batchSize: Int, flipTTA: Bool, translateTTA: Bool = false, workers: Int) throws -> EvaluationResult {
    let n = dataset.count
    try require(n >= world.size, "test set of \(n) images is smaller than the \(world.size) ranks sharing it; lower -np or --test-limit")
    let shard = try DataShard(rank: world.rank, count: world.size)
    let mine = shard.slice(Array(0..<n))
    let r = try evaluate(model: model, dataset: dataset, indices: mine, normalization: normalization,
                         batchSize: batchSize, flipTTA: flipTTA, translateTTA: translateTTA, workers: workers)
    let ks = r.topK.keys.sorted()
    // [predictions (n, as class + 1; 0 elsewhere) | loss sum | top-k hit counts | seconds]
    var v = [Double](repeating: 0, count: n + 1 + ks.count + 1)
    for (j, i) in mine.enumerated() { v[i] = Double(r.predictions[j] + 1) }
    v[n] = r.loss * Double(mine.count)
    for (j, k) in ks.enumerated() { v[n + 1 + j] = (r.topK[k] ?? 0) * Double(mine.count) }
    try world.sum(&v)
    let predictions = v[0..<n].map { Int($0) - 1 }
    try require(!predictions.contains(-1), "sharded evaluation: an image was evaluated by no rank")
    let cm = ConfusionMatrix(classes: dataset.classNames, labels: dataset.labels.map(Int.init), predictions: predictions)
    var topK: [Int: Double] = [:]
    for (j, k) in ks.enumerated() { topK[k] = v[n + 1 + j] / Double(n) }
    var out = r
    (out.loss, out.accuracy, out.topK, out.confusion, out.predictions) = (v[n] / Double(n), cm.accuracy, topK, cm, predictions)
    return out
}
