import CNNCore
@testable import Datasets
import Testing

/// Golden values from Pillow 13.0.0 (the library torchvision's PIL transforms call), made once by
/// a script and pasted here, for an 8x6 RGB image with pixel (x, y, c) = (37x + 91y + 53c + 11xy) % 256:
///   img.rotate(angle, Image.BILINEAR, fillcolor=0)   (torchvision RandomRotation(interpolation=BILINEAR))
///   img.rotate(angle, Image.NEAREST, fillcolor=0)    (torchvision RandomRotation's default)
///   img.resize((w, h), Image.BILINEAR)                (torchvision Resize)
///   img.convert("L")
/// Arrays are (C, H, W). Pillow writes 8-bit results; our rotation keeps floats, so it may differ
/// from Pillow by less than one level; resizing rounds as Pillow does, within one level.
@Suite struct PILGoldenTests {
    static let width = 8, height = 6
    static var image: [UInt8] {
        var out = [UInt8](repeating: 0, count: 3 * height * width)
        for c in 0..<3 { for y in 0..<height { for x in 0..<width {
            out[(c * height + y) * width + x] = UInt8((37 * x + 91 * y + 53 * c + 11 * x * y) % 256)
        } } }
        return out
    }
    static let rotate15: [Int] = [
        0, 0, 99, 135, 146, 158, 136, 0, 32, 97, 168, 148, 69, 119, 70, 86, 113, 167, 106, 122, 151, 169, 131, 238,
        169, 186, 114, 201, 79, 73, 102, 152, 20, 95, 99, 89, 141, 87, 134, 152, 0, 139, 94, 135, 163, 82, 0, 0,
        0, 0, 152, 188, 199, 130, 159, 0, 85, 150, 146, 61, 105, 97, 123, 139, 159, 146, 142, 150, 179, 82, 176, 54,
        222, 77, 159, 60, 98, 126, 155, 184, 73, 148, 152, 113, 186, 140, 106, 94, 0, 192, 147, 114, 46, 135, 0, 0,
        0, 0, 205, 241, 126, 129, 106, 0, 138, 154, 104, 114, 129, 150, 153, 181, 190, 164, 117, 170, 38, 127, 67, 107,
        39, 122, 71, 88, 127, 162, 133, 59, 126, 147, 82, 149, 99, 119, 159, 129, 0, 124, 127, 167, 99, 188, 0, 0,
    ]
    static let nearest15: [Int] = [
        0, 0, 111, 148, 185, 222, 171, 0, 37, 37, 187, 235, 27, 75, 24, 83, 91, 139, 44, 103, 162, 221, 181, 251,
        182, 241, 157, 227, 41, 111, 82, 163, 17, 87, 14, 95, 176, 1, 239, 239, 0, 108, 35, 127, 219, 55, 0, 0,
        0, 0, 164, 201, 238, 19, 224, 0, 90, 90, 240, 32, 80, 128, 77, 136, 144, 192, 97, 156, 215, 18, 234, 48,
        235, 38, 210, 24, 94, 164, 135, 216, 70, 140, 67, 148, 229, 54, 36, 36, 0, 161, 88, 180, 16, 108, 0, 0,
        0, 0, 217, 254, 35, 72, 21, 0, 143, 143, 37, 85, 133, 181, 130, 189, 197, 245, 150, 209, 12, 71, 31, 101,
        32, 91, 7, 77, 147, 217, 188, 13, 123, 193, 120, 201, 26, 107, 89, 89, 0, 214, 141, 233, 69, 161, 0, 0,
    ]
    static let nearestMinus33_5: [Int] = [
        0, 182, 139, 187, 111, 111, 0, 0, 17, 87, 241, 44, 235, 148, 185, 0, 108, 87, 157, 103, 162, 27, 75, 222,
        35, 14, 95, 227, 41, 221, 24, 171, 0, 127, 219, 176, 111, 181, 24, 83, 0, 0, 55, 55, 1, 82, 251, 0,
        0, 235, 192, 240, 164, 164, 0, 0, 70, 140, 38, 97, 32, 201, 238, 0, 161, 140, 210, 156, 215, 80, 128, 19,
        88, 67, 148, 24, 94, 18, 77, 224, 0, 180, 16, 229, 164, 234, 77, 136, 0, 0, 108, 108, 54, 135, 48, 0,
        0, 32, 245, 37, 217, 217, 0, 0, 123, 193, 91, 150, 85, 254, 35, 0, 214, 193, 7, 209, 12, 133, 181, 72,
        141, 120, 201, 77, 147, 71, 130, 21, 0, 233, 69, 26, 217, 31, 130, 189, 0, 0, 161, 161, 107, 188, 101, 0,
    ]
    static let rotateMinus33_5: [Int] = [
        0, 165, 157, 138, 110, 124, 0, 0, 33, 116, 154, 125, 213, 102, 176, 0, 132, 128, 145, 135, 133, 85, 121, 181,
        76, 77, 91, 153, 97, 206, 81, 155, 0, 149, 162, 166, 70, 148, 108, 98, 0, 0, 115, 97, 71, 116, 230, 0,
        0, 211, 156, 191, 144, 177, 0, 0, 86, 114, 71, 147, 39, 146, 229, 0, 185, 181, 198, 114, 168, 107, 151, 48,
        129, 130, 110, 73, 132, 32, 115, 206, 0, 140, 78, 218, 123, 192, 122, 151, 0, 0, 73, 150, 100, 161, 87, 0,
        0, 67, 200, 120, 180, 230, 0, 0, 139, 127, 115, 110, 92, 199, 88, 0, 159, 113, 24, 149, 89, 126, 151, 95,
        118, 127, 132, 109, 111, 84, 168, 84, 0, 193, 123, 44, 145, 109, 119, 158, 0, 0, 126, 184, 153, 134, 82, 0,
    ]
    static let resize5x4: [Int] = [
        51, 113, 130, 147, 115, 157, 137, 132, 128, 108, 95, 121, 131, 100, 173, 135, 103, 133, 117, 138, 104, 148, 140, 158,
        102, 151, 132, 127, 102, 144, 137, 140, 118, 137, 142, 188, 126, 112, 128, 125, 157, 148, 182, 123, 99, 120, 122, 110,
        121, 135, 138, 92, 113, 133, 87, 108, 155, 122, 163, 121,
    ]
    static let resize13x9: [Int] = [
        0, 16, 38, 61, 84, 107, 130, 152, 175, 198, 221, 96, 3, 46, 64, 90, 116, 142, 168, 131, 93, 119, 145, 171,
        124, 87, 106, 127, 156, 160, 177, 207, 131, 56, 86, 102, 106, 135, 156, 167, 191, 218, 122, 83, 118, 133, 146, 181,
        143, 47, 74, 98, 100, 127, 162, 123, 118, 158, 134, 109, 149, 144, 105, 140, 167, 32, 63, 105, 123, 153, 197, 134,
        67, 85, 117, 161, 206, 236, 93, 126, 167, 85, 59, 108, 136, 138, 55, 47, 96, 144, 178, 154, 136, 111, 85, 94,
        147, 137, 111, 85, 104, 157, 137, 119, 199, 130, 39, 95, 152, 208, 137, 66, 122, 179, 235, 144, 75, 53, 69, 91,
        114, 137, 160, 183, 205, 228, 162, 27, 40, 56, 99, 117, 143, 169, 161, 108, 120, 146, 172, 154, 101, 122, 140, 159,
        162, 168, 199, 172, 72, 78, 104, 108, 127, 157, 188, 209, 220, 154, 66, 101, 125, 133, 164, 174, 78, 56, 92, 127,
        151, 153, 126, 92, 132, 137, 97, 123, 147, 108, 113, 153, 119, 92, 85, 116, 158, 176, 148, 61, 81, 120, 138, 170,
        214, 136, 76, 146, 179, 220, 138, 101, 123, 167, 191, 108, 100, 149, 173, 188, 207, 189, 164, 138, 113, 87, 126, 164,
        138, 113, 87, 136, 172, 252, 183, 92, 148, 136, 35, 62, 119, 175, 143, 42, 89, 128, 106, 122, 144, 167, 190, 213,
        236, 229, 94, 48, 71, 93, 109, 152, 170, 191, 138, 120, 146, 173, 184, 131, 123, 149, 101, 65, 169, 190, 213, 113,
        69, 100, 109, 119, 149, 180, 210, 118, 49, 60, 84, 117, 126, 147, 181, 111, 39, 74, 109, 145, 155, 161, 78, 105,
        140, 101, 96, 136, 112, 87, 127, 122, 83, 118, 145, 138, 151, 162, 75, 45, 90, 112, 135, 179, 150, 63, 74, 86,
        199, 142, 66, 88, 123, 171, 114, 55, 104, 138, 160, 84, 28, 132, 114, 94, 147, 166, 140, 115, 104, 157, 166, 140,
        115, 97, 49, 88, 145, 201, 189, 88, 115, 172, 228, 196, 95, 142, 181,
    ]
    static let gray: [Int] = [
        43, 80, 117, 154, 191, 199, 86, 46, 134, 182, 201, 99, 70, 118, 166, 185, 196, 105, 87, 146, 176, 85, 67, 126,
        60, 130, 171, 91, 84, 154, 195, 115, 151, 203, 57, 138, 190, 44, 125, 177, 213, 78, 170, 83, 98, 190, 103, 118,
    ]

    func chwToHWC(_ chw: [UInt8], c: Int, h: Int, w: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: chw.count)
        for ch in 0..<c { for p in 0..<(h * w) { out[p * c + ch] = chw[ch * h * w + p] } }
        return out
    }
    func hwcToCHW(_ hwc: [UInt8], c: Int, h: Int, w: Int) -> [Int] {
        var out = [Int](repeating: 0, count: hwc.count)
        for ch in 0..<c { for p in 0..<(h * w) { out[ch * h * w + p] = Int(hwc[p * c + ch]) } }
        return out
    }

    @Test(arguments: [(Float(15), rotate15), (Float(-33.5), rotateMinus33_5)])
    func rotationMatchesPillow(angle: Float, golden: [Int]) throws {
        let a = try Augmenter(config: AugmentationConfig(rotationDegrees: 45, rotationInterpolation: .bilinear, normalization: .unit),
                              channels: 3, height: Self.height, width: Self.width)
        let out = a.apply(SampleDraw(angle: angle), to: Self.image)
        var worst = 0.0
        for (i, v) in out.enumerated() {
            let ours = Double(v) * 255
            worst = max(worst, abs(ours - Double(golden[i])))
            // Pillow fills outside with exactly 0; so do we.
            if golden[i] == 0 { #expect(ours < 1, "pixel \(i): Pillow 0, ours \(ours)") }
        }
        #expect(worst < 1, "worst difference from Pillow: \(worst) levels")
    }

    /// Nearest sampling picks source pixels, so it equals Pillow exactly.
    @Test(arguments: [(Float(15), nearest15), (Float(-33.5), nearestMinus33_5)])
    func nearestRotationMatchesPillowExactly(angle: Float, golden: [Int]) throws {
        let a = try Augmenter(config: AugmentationConfig(rotationDegrees: 45, rotationInterpolation: .nearest, normalization: .unit),
                              channels: 3, height: Self.height, width: Self.width)
        let out = a.apply(SampleDraw(angle: angle), to: Self.image).map { Int(($0 * 255).rounded()) }
        #expect(out == golden)
    }

    @Test(arguments: [(5, 4, resize5x4), (13, 9, resize13x9)])
    func resizeMatchesPillow(w: Int, h: Int, golden: [Int]) {
        let src = DecodedImage(width: Self.width, height: Self.height, channels: 3,
                               pixels: chwToHWC(Self.image, c: 3, h: Self.height, w: Self.width))
        let ours = hwcToCHW(ImageCodec.resize(src, width: w, height: h).pixels, c: 3, h: h, w: w)
        let worst = zip(ours, golden).map { abs($0 - $1) }.max()!
        #expect(worst <= 1, "worst difference from Pillow: \(worst) levels")
    }

    @Test func grayMatchesPillow() {
        let src = DecodedImage(width: Self.width, height: Self.height, channels: 3,
                               pixels: chwToHWC(Self.image, c: 3, h: Self.height, w: Self.width))
        #expect(ImageCodec.convert(src, channels: 1).pixels.map(Int.init) == Self.gray)
    }
}
