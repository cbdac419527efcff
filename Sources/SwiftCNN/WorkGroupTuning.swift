import CNNCore
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
    var opts = options ?? .forDevice(backend.deviceInfo)
    opts.log = log
    let batch = workload.batch
    let model = try ModelZoo.make(workload.model, inputShape: workload.inputShape, classes: workload.classes, backend: backend, seed: 1)
    let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4)))
    var rng = SeededRNG(seed: 0x3C_7E57)
    let images = HostTensor(shape: Shape([batch] + workload.inputShape.dims),
                            values: (0..<(batch * workload.inputShape.count)).map { _ in Float.random(in: -1...1, using: &rng) })
    let labels = (0..<batch).map { _ in Int32.random(in: 0..<Int32(workload.classes), using: &rng) }
    // A warm-up step first (programs built, buffers allocated, lazily created state in place),
    // then the recorded one.
    try runner.trainStep(images: images, labels: labels, seed: 1)
    try backend.synchronize()
    return try WorkGroupTuner(backend: backend, options: opts).run {
        try runner.trainStep(images: images, labels: labels, seed: 2)
    }
}
