import CNNCore
import Datasets
import Verification

/// `cnn verify` cases for the device input (Kernels/augment.cl): a batch built on the device from
/// uint8 images and host-drawn parameters against the host pipeline's batch (the "reference"
/// backend builds it with `BatchLoader.makeBatch`; a backend without device input does too).
/// Small shapes, so Oclgrind (scripts/oclgrind-check.sh) runs the kernel in every mode.
package enum DeviceInputCases {
    package static var quick: [VerifyCase] {
        let configs: [(String, AugmentationConfig, Tolerance)] = [
            ("crop+flip+cutout", AugmentationConfig(horizontalFlip: 0.5, cropPadding: 2, normalization: .cifar10, cutoutSize: 3), .exact),
            ("nearest rotation, reflect, MixUp", AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 30, cropPadding: 2,
                                                                    paddingMode: .reflect, mixupAlpha: 0.4), .exact),
            // Bilinear: within 1 ulp per pixel (a device may round its division differently).
            ("bilinear rotation, CutMix", AugmentationConfig(rotationDegrees: 20, rotationInterpolation: .bilinear, cropPadding: 1,
                                                             cutmixAlpha: 1), Tolerance(rtol: 2e-7, atolRMS: 0)),
        ]
        var cases: [VerifyCase] = []
        for (name, config, tol) in configs {
            for resident in [true, false] {
                cases.append(VerifyCase(op: "deviceBatch", shape: "N5 3x6x7 \(name)" + (resident ? " resident" : " staged")) { backend in
                    try run(backend, config: config, resident: resident, tolerance: tol)
                })
            }
        }
        return cases
    }

    static func run(_ backend: any Backend, config: AugmentationConfig, resident: Bool, tolerance: Tolerance) throws -> [VerifyOutput] {
        var rng = SeededRNG(seed: 5)
        let count = 9, C = 3, H = 6, W = 7
        let pixels = (0..<(count * C * H * W)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let data = try ImageDataset(pixels: pixels, labels: (0..<count).map { Int32($0 % 3) }, classNames: ["a", "b", "c"],
                                    channels: C, height: H, width: W)
        let loader = try BatchLoader(dataset: data, batchSize: 5, augmentation: config, seed: 3, workers: 0)
        var images: [Float] = [], labels: [Float] = []
        guard let provider = backend as? any DeviceBatchInputProvider else {
            for b in 0..<loader.batchesPerEpoch {
                let batch = loader.makeBatch(epoch: 1, index: b)
                images += batch.images.values
                labels += batch.softTargets?.values ?? batch.labels.map(Float.init)
            }
            return [VerifyOutput(name: "images", values: images, tolerance: tolerance), VerifyOutput(name: "targets", values: labels, tolerance: .exact)]
        }
        let input = try provider.makeBatchInput(spec: loader.deviceInputSpec, maxBatch: 5, classes: 3)
        if resident { try input.makeResident(data.pixels, images: count) }
        let order = loader.order(epoch: 1)
        for b in 0..<loader.batchesPerEpoch {
            let r = loader.recipe(epoch: 1, index: b, order: order)
            let t = try input.prepare(loader.deviceParams(r, resident: resident)) { row, dst in
                data.pixels.withUnsafeBufferPointer { dst.update(from: $0.baseAddress! + r.rows[row] * C * H * W, count: C * H * W) }
            }
            images += try backend.floats(t.images)
            labels += try t.soft.map { try backend.floats($0) } ?? backend.ints(t.labels).map(Float.init)
        }
        return [VerifyOutput(name: "images", values: images, tolerance: tolerance), VerifyOutput(name: "targets", values: labels, tolerance: .exact)]
    }
}
