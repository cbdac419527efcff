import CNNCore
@testable import Datasets
import Foundation
import Testing

/// Exact pixels of each augmentation on small hand-made images. With the unit normalisation
/// (mean 0, std 1) every output is pixel / 255, so the expected arrays are written as pixels.
@Suite struct AugmentationTests {
    let grid3: [UInt8] = [1, 2, 3,
                          4, 5, 6,
                          7, 8, 9]

    func augmenter(_ c: AugmentationConfig, channels: Int = 1, h: Int = 3, w: Int = 3) -> Augmenter {
        try! Augmenter(config: c, channels: channels, height: h, width: w)
    }

    @Test func identityDrawCopies() {
        let a = augmenter(AugmentationConfig(normalization: .unit))
        #expect(a.apply(a.identityDraw, to: grid3) == unit([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    }

    @Test func horizontalFlip() {
        let a = augmenter(AugmentationConfig(horizontalFlip: 1, normalization: .unit), h: 2, w: 3)
        let img: [UInt8] = [1, 2, 3, 4, 5, 6]
        #expect(a.apply(SampleDraw(flip: true), to: img) == unit([3, 2, 1, 6, 5, 4]))
        // Two channels flip independently.
        let b = augmenter(AugmentationConfig(normalization: .unit), channels: 2, h: 1, w: 2)
        #expect(b.apply(SampleDraw(flip: true), to: [10, 20, 30, 40]) == unit([20, 10, 40, 30]))
    }

    @Test func cropWithZeroPadding() {
        let a = augmenter(AugmentationConfig(cropPadding: 1, paddingMode: .zero, normalization: .unit))
        // Crop origin (0, 2) in the padded 5x5: output(y, x) = source(y - 1, x + 1).
        #expect(a.apply(SampleDraw(cropY: 0, cropX: 2), to: grid3) == unit([0, 0, 0,
                                                                             2, 3, 0,
                                                                             5, 6, 0]))
        // Crop origin (2, 0): output(y, x) = source(y + 1, x - 1).
        #expect(a.apply(SampleDraw(cropY: 2, cropX: 0), to: grid3) == unit([0, 4, 5,
                                                                             0, 7, 8,
                                                                             0, 0, 0]))
    }

    @Test func cropWithReflectPadding() {
        let a = augmenter(AugmentationConfig(cropPadding: 1, paddingMode: .reflect, normalization: .unit))
        // Row -1 mirrors row 1, column 3 mirrors column 1 (no edge repeat, like numpy "reflect").
        #expect(a.apply(SampleDraw(cropY: 0, cropX: 2), to: grid3) == unit([5, 6, 5,
                                                                             2, 3, 2,
                                                                             5, 6, 5]))
        #expect(a.apply(SampleDraw(cropY: 2, cropX: 0), to: grid3) == unit([5, 4, 5,
                                                                             8, 7, 8,
                                                                             5, 4, 5]))
        // Padding 2: index -2 mirrors 2, index 4 mirrors 0.
        let b = augmenter(AugmentationConfig(cropPadding: 2, paddingMode: .reflect, normalization: .unit))
        #expect(b.apply(SampleDraw(cropY: 0, cropX: 4), to: grid3) == unit([9, 8, 7,
                                                                             6, 5, 4,
                                                                             3, 2, 1]))
    }

    @Test func cropThenFlip() {
        // Crop first (output = source(y, x + 1), zero right column), then mirror.
        let a = augmenter(AugmentationConfig(horizontalFlip: 1, cropPadding: 1, normalization: .unit))
        #expect(a.apply(SampleDraw(cropY: 1, cropX: 2, flip: true), to: grid3) == unit([0, 3, 2,
                                                                                          0, 6, 5,
                                                                                          0, 9, 8]))
    }

    @Test func rotationByZeroIsIdentity() {
        let a = augmenter(AugmentationConfig(rotationDegrees: 15, normalization: .unit))
        #expect(a.apply(SampleDraw(angle: 0), to: grid3) == unit([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    }

    /// Quarter turns move whole pixels: both samplings give the same exact permutation.
    @Test(arguments: RotationInterpolation.allCases)
    func rotationBy90(mode: RotationInterpolation) {
        let a = augmenter(AugmentationConfig(rotationDegrees: 90, rotationInterpolation: mode, normalization: .unit))
        // Counter-clockwise: the right column becomes the top row.
        #expect(a.apply(SampleDraw(angle: 90), to: grid3) == unit([3, 6, 9,
                                                                    2, 5, 8,
                                                                    1, 4, 7]))
        #expect(a.apply(SampleDraw(angle: -90), to: grid3) == unit([7, 4, 1,
                                                                     8, 5, 2,
                                                                     9, 6, 3]))
        #expect(a.apply(SampleDraw(angle: 180), to: grid3) == unit([9, 8, 7, 6, 5, 4, 3, 2, 1]))
        // Even size: the centre lies between pixels.
        let b = augmenter(AugmentationConfig(rotationDegrees: 90, rotationInterpolation: mode, normalization: .unit), h: 4, w: 4)
        let img = (1...16).map(UInt8.init)
        #expect(b.apply(SampleDraw(angle: 90), to: img) == unit([4, 8, 12, 16,
                                                                  3, 7, 11, 15,
                                                                  2, 6, 10, 14,
                                                                  1, 5, 9, 13]))
        // Not square (H 2, W 4): what falls outside the source is filled with 0.
        let c = augmenter(AugmentationConfig(rotationDegrees: 90, rotationInterpolation: mode, normalization: .unit), h: 2, w: 4)
        #expect(c.apply(SampleDraw(angle: 90), to: [1, 2, 3, 4, 5, 6, 7, 8]) == unit([0, 3, 7, 0,
                                                                                       0, 2, 6, 0]))
    }

    @Test func rotationBy45Nearest() {
        let a = augmenter(AugmentationConfig(rotationDegrees: 45, rotationInterpolation: .nearest, normalization: .unit))
        let out = a.apply(SampleDraw(angle: 45), to: grid3)
        // Output (x, y) takes source pixel (floor(xin), floor(yin)) with xin = 0.7071·(x − y) + 1.5,
        // yin = 0.7071·(x + y − 2) + 1.5: (1, 0) → (2.207, 0.793) → pixel (2, 0) = 3; (0, 0) → (1.5, 0.086)
        // → (1, 0) = 2; (2, 0) → (2.914, 1.5) → (2, 1) = 6; (1, 2) → (0.793, 2.207) → (0, 2) = 7.
        // Values stay whole levels (no blending).
        #expect(out.map { $0 * 255 } == [2, 3, 6, 1, 5, 9, 4, 7, 8])
    }

    @Test func rotationBy45IsBilinear() {
        let a = augmenter(AugmentationConfig(rotationDegrees: 45, rotationInterpolation: .bilinear, normalization: .unit))
        let out = a.apply(SampleDraw(angle: 45), to: grid3)
        // Centre pixel stays. Pixel (x 1, y 0) samples the source at (x 1.7071, y 0.2929):
        // rows 0/1 blend 2->3 and 5->6 by 0.7071, then 0.2929 of the way down: 3.5858.
        #expect(abs(out[4] - 5 / 255) < 1e-6)
        let s = Float(0.5.squareRoot())
        let v1 = 2 + s, v2 = 5 + s, expected = v1 + (v2 - v1) * (1 - s)
        #expect(abs(out[1] * 255 - expected) < 1e-4)
        // Corner (0, 0) maps to (x 1.5, y 0.086): inside, clamped to row 0 → pixel 2.
        #expect(abs(out[0] * 255 - 2) < 1e-4)
    }

    @Test func rotationComposesWithCrop() {
        // Crop shifts the image one column left (zero right column), then rotate 90°:
        // cropped = [2 3 0 / 5 6 0 / 8 9 0], rotated CCW = [0 0 0 / 3 6 9 / 2 5 8].
        let a = augmenter(AugmentationConfig(rotationDegrees: 90, cropPadding: 1, normalization: .unit))
        #expect(a.apply(SampleDraw(cropY: 1, cropX: 2, angle: 90), to: grid3) == unit([0, 0, 0,
                                                                                         3, 6, 9,
                                                                                         2, 5, 8]))
    }

    @Test func cutout() {
        let a = augmenter(AugmentationConfig(normalization: .unit, cutoutSize: 2), h: 4, w: 4)
        let img = [UInt8](repeating: 255, count: 16)
        #expect(a.apply(SampleDraw(cutoutCenter: (1, 1)), to: img) == [0, 0, 1, 1,
                                                                      0, 0, 1, 1,
                                                                      1, 1, 1, 1,
                                                                      1, 1, 1, 1])
        // Size 3 at (3, 3): rows/columns 2..<5, clipped to 2..<4.
        let b = augmenter(AugmentationConfig(normalization: .unit, cutoutSize: 3), h: 4, w: 4)
        #expect(b.apply(SampleDraw(cutoutCenter: (3, 3)), to: img) == [1, 1, 1, 1,
                                                                      1, 1, 1, 1,
                                                                      1, 1, 0, 0,
                                                                      1, 1, 0, 0])
        // Cutout writes 0 after normalisation (the mean), in every channel.
        let c = augmenter(AugmentationConfig(cutoutSize: 1), channels: 2, h: 1, w: 2)
        #expect(c.apply(SampleDraw(cutoutCenter: (0, 1)), to: [255, 255, 0, 0]) == [1, 0, -1, 0])
    }

    @Test func normalize() {
        // (v / 255 - mean) / std per channel: channel 0 mean 0.5 std 0.5; channel 1 mean 0.4 std 0.2;
        // channel 2 mean 0.3 std 0.1. Pixels 0, 51 (0.2), 102 (0.4), 255 (1.0).
        let n = Normalization(mean: [0.5, 0.4, 0.3], std: [0.5, 0.2, 0.1])
        let a = augmenter(AugmentationConfig(normalization: n), channels: 3, h: 1, w: 2)
        let out = a.apply(a.identityDraw, to: [0, 255, 51, 255, 102, 0])
        let expected: [Float] = [-1, 1, -1, 3, 1, -3]
        for (o, e) in zip(out, expected) { #expect(abs(o - e) < 1e-5, "got \(out)") }
        // The guide's default maps 0...255 to -1...1; one value serves every channel.
        let g = augmenter(AugmentationConfig(), channels: 3, h: 1, w: 1)
        #expect(g.apply(g.identityDraw, to: [0, 255, 0]) == [-1, 1, -1])
        // The rotation path normalises with the same float operations as the direct path.
        let r = augmenter(AugmentationConfig(rotationDegrees: 90, normalization: .cifar10), channels: 3, h: 1, w: 1)
        #expect(r.apply(SampleDraw(angle: 90), to: [17, 128, 250]) == r.apply(r.identityDraw, to: [17, 128, 250]))
    }

    @Test func drawsStayInRangeAndFollowProbabilities() {
        let a = augmenter(AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 15, cropPadding: 4, cutoutSize: 2,
                                             cutoutProbability: 0.25), h: 8, w: 8)
        var rng = SeededRNG(seed: 7)
        var flips = 0, cutouts = 0
        for _ in 0..<2000 {
            let d = a.draw(&rng)
            #expect((0...8).contains(d.cropY) && (0...8).contains(d.cropX))
            #expect(d.angle >= -15 && d.angle <= 15)
            if d.flip { flips += 1 }
            if let c = d.cutoutCenter { cutouts += 1; #expect((0..<8).contains(c.y) && (0..<8).contains(c.x)) }
        }
        #expect((900...1100).contains(flips))
        #expect((400...600).contains(cutouts))
        let never = augmenter(AugmentationConfig(), h: 8, w: 8)
        let always = augmenter(AugmentationConfig(horizontalFlip: 1), h: 8, w: 8)
        for _ in 0..<100 {
            #expect(never.draw(&rng) == never.identityDraw)
            #expect(always.draw(&rng).flip)
        }
    }

    @Test func configDecodesWithDefaultsAndRejectsBadValues() throws {
        let json = #"{"horizontalFlip": 0.5, "rotationDegrees": 15, "normalization": "cifar10", "cutmixAlpha": 1}"#
        let c = try JSONDecoder().decode(AugmentationConfig.self, from: Data(json.utf8))
        #expect(c.horizontalFlip == 0.5 && c.rotationDegrees == 15 && c.cutmixAlpha == 1)
        #expect(c.normalization == .cifar10 && c.cropPadding == 0 && c.mixupAlpha == 0)
        let roundTrip = try JSONDecoder().decode(AugmentationConfig.self, from: JSONEncoder().encode(c))
        #expect(roundTrip == c)
        #expect(try JSONDecoder().decode(AugmentationConfig.self, from: Data("{}".utf8)) == AugmentationConfig())
        let custom = #"{"normalization": {"mean": [0.1], "std": [0.2]}, "paddingMode": "reflect", "cropPadding": 4}"#
        let n = try JSONDecoder().decode(AugmentationConfig.self, from: Data(custom.utf8))
        #expect(n.normalization == Normalization(mean: [0.1], std: [0.2]) && n.paddingMode == .reflect && n.cropPadding == 4)
        // A misspelt key is an error, not a silent default.
        let typo = #"{"horizontal_flip": 0.5}"#
        #expect(errorMessage { _ = try JSONDecoder().decode(AugmentationConfig.self, from: Data(typo.utf8)) }
            .contains("unknown key 'horizontal_flip'"))

        #expect(errorMessage { _ = try Augmenter(config: AugmentationConfig(horizontalFlip: 1.5), channels: 3, height: 8, width: 8) }
            .contains("horizontalFlip = 1.5"))
        #expect(errorMessage { _ = try Augmenter(config: AugmentationConfig(cropPadding: 8, paddingMode: .reflect), channels: 3, height: 8, width: 8) }
            .contains("cropPadding = 8"))
        #expect(errorMessage { _ = try Augmenter(config: AugmentationConfig(normalization: .cifar10), channels: 1, height: 8, width: 8) }
            .contains("1 channel"))
        #expect(errorMessage { _ = try Normalization.named("imagenet") }.contains("unknown normalization 'imagenet'"))
    }
}
