import CNNCore
@testable import Datasets
import Testing

@Suite struct MixingTests {
    @Test func mixupImagesAndTargets() {
        // Two 1x1x2 images, labels 0 and 2 of 3 classes, lambda 0.75, rows swapped.
        var images: [Float] = [0, 1, 1, 0]
        let mix = BatchMix(kind: .mixup, lambda: 0.75, partner: [1, 0])
        var scratch: [Float] = []
        images.withUnsafeMutableBufferPointer { mix.apply(images: $0.baseAddress!, n: 2, channels: 1, height: 1, width: 2, scratch: &scratch) }
        #expect(images == [0.25, 0.75, 0.75, 0.25])
        #expect(mix.softTargets(labels: [0, 2], numClasses: 3) == [0.75, 0, 0.25,
                                                                   0.25, 0, 0.75])
        // Same class on both sides: all weight on it.
        #expect(mix.softTargets(labels: [1, 1], numClasses: 3) == [0, 1, 0, 0, 1, 0])
    }

    @Test func cutmixBoxAndAdjustedLambda() {
        // lambda 0.75 → side 4 * sqrt(0.25) = 2; centred at (2, 2): rows/cols 1..<3, area 4 of 16.
        let box = BatchMix.cutmixBox(lambda: 0.75, centerY: 2, centerX: 2, height: 4, width: 4)
        #expect(box == (1, 3, 1, 3))
        #expect(BatchMix.cutmixLambda(box: box, height: 4, width: 4) == 0.75)
        // Centred at the corner, the box is clipped to 1x1: lambda becomes 1 - 1/16, not 0.75.
        let clipped = BatchMix.cutmixBox(lambda: 0.75, centerY: 0, centerX: 0, height: 4, width: 4)
        #expect(clipped == (0, 1, 0, 1))
        #expect(BatchMix.cutmixLambda(box: clipped, height: 4, width: 4) == 0.9375)
        // A 4x2 image (H 4, W 2), lambda 0.75: height 2, width 1, centred (1, 1): rows 0..<2, cols 1..<1 — empty.
        let thin = BatchMix.cutmixBox(lambda: 0.75, centerY: 1, centerX: 1, height: 4, width: 2)
        #expect(BatchMix.cutmixLambda(box: thin, height: 4, width: 2) == 1)
    }

    @Test func cutmixPastesThePartnersBox() {
        // Image 0 all 1, image 1 all 2 (1 channel, 4x4); box rows 0..<1, cols 0..<2.
        var images = [Float](repeating: 1, count: 16) + [Float](repeating: 2, count: 16)
        let box = (y0: 0, y1: 1, x0: 0, x1: 2)
        let lam = BatchMix.cutmixLambda(box: box, height: 4, width: 4)
        #expect(lam == 0.875)
        let mix = BatchMix(kind: .cutmix, lambda: lam, partner: [1, 0], box: box)
        var scratch: [Float] = []
        images.withUnsafeMutableBufferPointer { mix.apply(images: $0.baseAddress!, n: 2, channels: 1, height: 4, width: 4, scratch: &scratch) }
        var e0 = [Float](repeating: 1, count: 16); e0[0] = 2; e0[1] = 2
        var e1 = [Float](repeating: 2, count: 16); e1[0] = 1; e1[1] = 1
        #expect(images == e0 + e1)
        #expect(mix.softTargets(labels: [0, 1], numClasses: 2) == [0.875, 0.125, 0.125, 0.875])
    }

    @Test func betaSamplesHaveTheRightMean() {
        var rng = SeededRNG(seed: 3)
        for (a, b) in [(1.0, 1.0), (0.2, 0.2), (2.0, 5.0)] {
            var sum = 0.0
            let n = 4000
            for _ in 0..<n {
                let x = DataRandom.beta(a, b, &rng)
                #expect(x >= 0 && x <= 1)
                sum += x
            }
            #expect(abs(sum / Double(n) - a / (a + b)) < 0.02, "Beta(\(a), \(b)) mean \(sum / Double(n))")
        }
    }

    @Test func loaderMixesAugmentedRows() throws {
        // 8 random 3x8x8 images; the same seed with and without mixing gives the same per-sample
        // augmentation, so mixed rows can be checked against the unmixed ones.
        var rng = SeededRNG(seed: 11)
        let px = (0..<(8 * 192)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let data = try ImageDataset(pixels: px, labels: [0, 1, 2, 3, 0, 1, 2, 3], classNames: ["a", "b", "c", "d"],
                                    channels: 3, height: 8, width: 8)
        let base = AugmentationConfig(horizontalFlip: 0.5, cropPadding: 2)
        var withCut = base; withCut.cutmixAlpha = 1
        var withMix = base; withMix.mixupAlpha = 0.4
        let plain = try BatchLoader(dataset: data, batchSize: 8, augmentation: base, seed: 5, workers: 0)
        let cut = try BatchLoader(dataset: data, batchSize: 8, augmentation: withCut, seed: 5, workers: 0)
        let mixl = try BatchLoader(dataset: data, batchSize: 8, augmentation: withMix, seed: 5, workers: 0)
        #expect(plain.makeBatch(epoch: 0, index: 0).softTargets == nil)
        for epoch in 0..<3 {
            let p = plain.makeBatch(epoch: epoch, index: 0)
            let c = cut.makeBatch(epoch: epoch, index: 0)
            let m = mixl.makeBatch(epoch: epoch, index: 0)
            #expect(p.labels == c.labels && p.indices == c.indices)
            let cm = try #require(c.mix), box = try #require(cm.box)
            #expect(cm.kind == .cutmix && cm.lambda == BatchMix.cutmixLambda(box: box, height: 8, width: 8))
            let soft = try #require(c.softTargets)
            #expect(soft.shape == Shape(8, 4))
            for i in 0..<8 {
                #expect(abs(soft.values[(i * 4)..<(i * 4 + 4)].reduce(0, +) - 1) < 1e-6)
                for ch in 0..<3 { for y in 0..<8 { for x in 0..<8 {
                    let k = ((i * 3 + ch) * 8 + y) * 8 + x
                    let inBox = (box.y0..<box.y1).contains(y) && (box.x0..<box.x1).contains(x)
                    let src = inBox ? cm.partner[i] : i
                    #expect(c.images.values[k] == p.images.values[k - i * 192 + src * 192])
                } } }
            }
            let mm = try #require(m.mix)
            #expect(mm.kind == .mixup && mm.lambda >= 0 && mm.lambda <= 1)
            for i in 0..<8 {
                for k in 0..<192 {
                    let e = mm.lambda * p.images.values[i * 192 + k] + (1 - mm.lambda) * p.images.values[mm.partner[i] * 192 + k]
                    #expect(abs(m.images.values[i * 192 + k] - e) < 1e-6)
                }
                let t = try #require(m.softTargets).values
                var expected = [Float](repeating: 0, count: 4)
                expected[Int(p.labels[i])] += mm.lambda
                expected[Int(p.labels[mm.partner[i]])] += 1 - mm.lambda
                #expect(Array(t[(i * 4)..<(i * 4 + 4)]) == expected)
            }
        }
    }
}
