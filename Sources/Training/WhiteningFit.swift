import CNNCore
import Datasets
import NN

extension PatchWhitening {
    /// Fits the filters to the patches of the first `maxImages` images of `indices` (normalised as
    /// training normalises them) and returns the patches it fitted to (rows of C*k*k, for checks).
    @discardableResult
    public func fit(to data: ImageDataset, indices: [Int], normalization: Normalization, maxImages: Int = 5000,
                    epsilon: Double = 5e-4) throws -> [Double] {
        try require(data.channels == channels, "PatchWhitening(\(channels)): the data has \(data.channels) channels")
        let chosen = Array(indices.prefix(maxImages))
        try require(!chosen.isEmpty, "PatchWhitening: no training images to fit the whitening to")
        let (c, h, w) = (data.channels, data.height, data.width)
        var images = [Float](repeating: 0, count: chosen.count * c * h * w)
        for (k, i) in chosen.enumerated() {
            let px = data.image(i)
            var o = k * c * h * w
            for (j, p) in px.enumerated() {
                let ch = j / (h * w)
                let m = normalization.mean[ch % normalization.mean.count], s = normalization.std[ch % normalization.std.count]
                images[o] = (Float(p) / 255 - m) / s
                o += 1
            }
        }
        let patches = Self.patches(images, count: chosen.count, channels: c, height: h, width: w, kernel: kernel)
        try setFilters(try Self.whiteningMatrix(patches: patches, dimension: patchDimension, epsilon: epsilon))
        return patches
    }
}

/// Fits every whitening layer of `model` to the run's training images (a fresh run; a resumed run
/// then loads the fitted filters from its checkpoint).
func fitWhiteningLayers(model: Model, data: TrainingData, config: TrainConfig) throws {
    for (_, layer) in model.network.flattened() {
        guard let whiten = layer as? PatchWhitening else { continue }
        try whiten.fit(to: data.train, indices: data.split.train, normalization: config.augmentation.normalization)
    }
}
