import CNNCore
import Datasets
import Foundation
import NN
import OpenCLBackend
import Training

// The work-group half of `cnn tune` (the search: OpenCLBackend/WorkGroupTuner.swift): the launches
// of one training step of the workload's model, as `cnn-bench`'s train:MODEL:BATCH runs it.

/// Searches the work-group sizes of our own kernels for one training step (Adam, random batch) of
/// `workload`'s model at its batch size, on a throwaway model; applies the result to the device.
package func searchWorkGroups(_ backend: OpenCLBackend, workload: TuningWorkload, options: WorkGroupTuner.Options? = nil,
                              log: @escaping (String) -> Void) throws -> WorkGroupTuning {
    defer { backend.trimMemoryCache() }   // the throwaway model and the input copies: back to the driver
    return try recordAndSearch(backend, workload: workload, options: options, log: log)
}

private func recordAndSearch(_ backend: OpenCLBackend, workload: TuningWorkload, options: WorkGroupTuner.Options?,
                             log: @escaping (String) -> Void) throws -> WorkGroupTuning {
    var opts = options ?? .forDevice(backend.deviceInfo)
    opts.log = log
    let batch = workload.batch
    let model = try ModelZoo.make(workload.model, inputShape: workload.inputShape, classes: workload.classes, backend: backend, seed: 1)
    let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4)))
    var rng = SeededRNG(seed: 0x3C_7E57)
    let dims = workload.inputShape.dims
    try require(dims.count == 3, "work-group tuning: input shape \(workload.inputShape) is not (C, H, W)")
    // As `cnn train` and cnn-bench's train:MODEL:BATCH feed the device: a uint8 batch, converted there.
    let pixels = (0..<(batch * workload.inputShape.count)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    let labels = (0..<batch).map { _ in Int32.random(in: 0..<Int32(workload.classes), using: &rng) }
    let data = try ImageDataset(pixels: pixels, labels: labels, classNames: (0..<workload.classes).map { "c\($0)" },
                                channels: dims[0], height: dims[1], width: dims[2], source: "random uint8 batch (work-group tuning)")
    let loader = try BatchLoader(dataset: data, batchSize: batch, shuffle: false, augmentation: .none, seed: 1, workers: 0)
    guard let feed = try DeviceFeed.make(backend: backend, loader: loader, classes: workload.classes, resident: false, log: { _ in }) else {
        throw CNNError.device("work-group tuning: \(backend.deviceInfo.name) gave no device batch input")
    }
    let order = loader.order(epoch: 0)
    func step(_ seed: UInt64) throws {
        let t = try feed.prepare(loader, epoch: 0, index: 0, order: order)
        try runner.trainStep(x: t.x, y: t.y, soft: t.soft, count: t.count, seed: seed)
    }
    // A warm-up step first (programs built, buffers allocated, lazily created state in place),
    // then the recorded one.
    try step(1)
    try backend.synchronize()
    var result = try WorkGroupTuner(backend: backend, options: opts).run { try step(2) }
    result.workload = "\(workload.model), batch \(batch)"
    return result
}
