import CNNCore
@testable import Datasets
import Foundation
import Testing

@Suite struct ImageFolderTests {
    /// 2x2 RGB: red, green / blue, white (interleaved H, W, C).
    let rgb2x2 = DecodedImage(width: 2, height: 2, channels: 3, pixels: [255, 0, 0, 0, 255, 0,
                                                                          0, 0, 255, 255, 255, 255])

    func png(_ dir: TempDir, _ rel: String, _ img: DecodedImage) throws {
        try ImageCodec.writePNG(img, to: dir.sub(rel))
    }

    @Test func pngRoundTripAndFormats() throws {
        let dir = TempDir()
        try png(dir, "a.png", rgb2x2)
        #expect(try ImageCodec.decode(fileAt: dir.sub("a.png")) == rgb2x2)
        let gray = DecodedImage(width: 3, height: 1, channels: 1, pixels: [0, 128, 255])
        try png(dir, "g.png", gray)
        #expect(try ImageCodec.decode(fileAt: dir.sub("g.png")) == gray)
        // RGBA: alpha is dropped, colour kept (as PIL's convert("RGB")).
        let rgba = DecodedImage(width: 1, height: 1, channels: 4, pixels: [10, 20, 30, 0])
        try png(dir, "t.png", rgba)
        #expect(try ImageCodec.decode(fileAt: dir.sub("t.png")).pixels == [10, 20, 30])
    }

    @Test func grayAndColourConversion() {
        // PIL's luma: red 76, green 150, blue 29, white 255.
        #expect(ImageCodec.convert(rgb2x2, channels: 1).pixels == [76, 150, 29, 255])
        let g = DecodedImage(width: 2, height: 1, channels: 1, pixels: [7, 200])
        #expect(ImageCodec.convert(g, channels: 3).pixels == [7, 7, 7, 200, 200, 200])
    }

    @Test func bilinearResize() {
        // Upscale 2x2 → 4x4: each axis [a, b] → [a, .75a + .25b, .25a + .75b, b].
        let small = DecodedImage(width: 2, height: 2, channels: 1, pixels: [0, 100, 200, 255])
        #expect(ImageCodec.resize(small, width: 4, height: 4).pixels == [0, 25, 75, 100,
                                                                         50, 72, 117, 139,
                                                                         150, 167, 200, 216,
                                                                         200, 214, 241, 255])
        // Downscale 4 → 2 (antialiased triangle of half-width 2): weights 3/7, 3/7, 1/7 and 1/7, 3/7, 3/7.
        let row: [UInt8] = [0, 70, 140, 210]
        let big = DecodedImage(width: 4, height: 4, channels: 1, pixels: row + row + row + row)
        #expect(ImageCodec.resize(big, width: 2, height: 2).pixels == [50, 160, 50, 160])
        // Same size: untouched.
        #expect(ImageCodec.resize(rgb2x2, width: 2, height: 2) == rgb2x2)
    }

    @Test func loadsFolderOfPNGAndJPEG() throws {
        let dir = TempDir()
        dir.mkdir("data/dog"); dir.mkdir("data/cat"); dir.mkdir("data/.hidden")
        try png(dir, "data/cat/b.png", rgb2x2)
        try png(dir, "data/cat/a.PNG", DecodedImage(width: 2, height: 2, channels: 1, pixels: [1, 2, 3, 4]))
        // A flat colour survives JPEG almost exactly (no edges to ring).
        let flat = DecodedImage(width: 16, height: 16, channels: 3, pixels: Array([UInt8]([200, 100, 50]) .lazy.cycled(256)))
        try ImageCodec.writeJPEG(flat, to: dir.sub("data/dog/x.jpg"), quality: 95)
        dir.write("data/dog/notes.txt", Array("not an image".utf8))
        let opts = ImageFolderOptions(channels: 3, height: 2, width: 2)
        let d = try ImageFolder.load(root: dir.sub("data"), options: opts)
        #expect(d.classNames == ["cat", "dog"])
        #expect(d.labels == [0, 0, 1])
        #expect(d.count == 3 && d.channels == 3 && d.height == 2 && d.width == 2)
        #expect(d.source.contains("skipped 1 non-image"))
        // cat/a.PNG first (sorted), gray repeated into R, G, B planes (C, H, W).
        #expect(Array(d.image(0)) == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4])
        // cat/b.png: planes R = [255 0 0 255], G = [0 255 0 255], B = [0 0 255 255].
        #expect(Array(d.image(1)) == [255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255])
        // dog/x.jpg, 16x16 → 2x2: flat colour within JPEG's rounding.
        let j = Array(d.image(2))
        for (k, v) in j.enumerated() { #expect(abs(Int(v) - [200, 100, 50][k / 4]) <= 2, "JPEG pixel \(k) = \(v)") }
        // Grayscale datasets use PIL's luma.
        let g = try ImageFolder.load(root: dir.sub("data"), options: ImageFolderOptions(channels: 1, height: 2, width: 2))
        #expect(Array(g.image(1)) == [76, 150, 29, 255])
        // The thread count does not change the result.
        let one = try ImageFolder.load(root: dir.sub("data"), options: opts, threads: 1)
        #expect(one.pixels == d.pixels && one.labels == d.labels)
    }

    @Test func unreadableImagesAreNamed() throws {
        let dir = TempDir()
        dir.mkdir("r/a")
        try png(dir, "r/a/good.png", rgb2x2)
        dir.write("r/a/noise.png", Array("this is not a png file at all".utf8))
        var m = errorMessage { _ = try ImageFolder.load(root: dir.sub("r")) }
        #expect(m.contains(dir.sub("r/a/noise.png")) && m.contains("not a PNG or JPEG"))
        // A truncated PNG.
        try FileManager.default.removeItem(atPath: dir.sub("r/a/noise.png"))
        var rng = SeededRNG(seed: 2)
        let busy = DecodedImage(width: 32, height: 32, channels: 3, pixels: (0..<3072).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        try png(dir, "r/a/cut.png", busy)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.sub("r/a/cut.png")))
        dir.write("r/a/cut.png", Array(bytes.prefix(bytes.count / 2)))
        m = errorMessage { _ = try ImageFolder.load(root: dir.sub("r")) }
        #expect(m.contains(dir.sub("r/a/cut.png")) && m.contains("truncated"))
        // A truncated JPEG is an error too, not a half-grey image.
        try FileManager.default.removeItem(atPath: dir.sub("r/a/cut.png"))
        try ImageCodec.writeJPEG(busy, to: dir.sub("r/a/cut.jpg"), quality: 90)
        let jb = try Data(contentsOf: URL(fileURLWithPath: dir.sub("r/a/cut.jpg")))
        dir.write("r/a/cut.jpg", Array(jb.prefix(jb.count / 2)))
        m = errorMessage { _ = try ImageFolder.load(root: dir.sub("r")) }
        #expect(m.contains(dir.sub("r/a/cut.jpg")) && m.contains("Premature end of JPEG file"))
        // An empty file.
        dir.write("r/a/cut.jpg", [])
        m = errorMessage { _ = try ImageFolder.load(root: dir.sub("r")) }
        #expect(m.contains(dir.sub("r/a/cut.jpg")) && m.contains("empty"))
    }

    @Test func wronglySizedImages() throws {
        let dir = TempDir()
        dir.mkdir("r/a")
        try png(dir, "r/a/one.png", rgb2x2)
        try png(dir, "r/a/two.png", DecodedImage(width: 3, height: 2, channels: 3, pixels: [UInt8](repeating: 9, count: 18)))
        // Without resizing, an image of another size is an error naming it and both sizes.
        let strict = ImageFolderOptions(height: 2, width: 2, resize: false)
        let m = errorMessage { _ = try ImageFolder.load(root: dir.sub("r"), options: strict) }
        #expect(m.contains(dir.sub("r/a/two.png")) && m.contains("is 3x2 pixels") && m.contains("takes 2x2"))
        // With resizing (the default) it is accepted.
        #expect(try ImageFolder.load(root: dir.sub("r"), options: ImageFolderOptions(height: 2, width: 2)).count == 2)
        // An image above the pixel limit is refused before decoding.
        let tiny = ImageFolderOptions(height: 2, width: 2, maxPixels: 5)
        let big = errorMessage { _ = try ImageFolder.load(root: dir.sub("r"), options: tiny) }
        #expect(big.contains(dir.sub("r/a/two.png")) && big.contains("3x2 pixels, more than the limit of 5"))
    }

    @Test func folderStructureErrors() throws {
        let dir = TempDir()
        #expect(errorMessage { _ = try ImageFolder.load(root: dir.sub("nope")) }.contains("\(dir.sub("nope")) does not exist"))
        dir.mkdir("flat")
        dir.write("flat/img.png", [1, 2, 3])
        let noClasses = errorMessage { _ = try ImageFolder.load(root: dir.sub("flat")) }
        #expect(noClasses.contains("\(dir.sub("flat")) has no class folders") && noClasses.contains("<class name>"))
        dir.mkdir("r/cat"); dir.mkdir("r/dog")
        try png(dir, "r/cat/a.png", rgb2x2)
        dir.write("r/dog/readme.txt", [65])
        let empty = errorMessage { _ = try ImageFolder.load(root: dir.sub("r")) }
        #expect(empty.contains("class folder \(dir.sub("r/dog")) (class 'dog') has no images"))
        #expect(errorMessage { _ = try ImageFolder.load(root: dir.sub("r"), options: ImageFolderOptions(channels: 2)) }
            .contains("channels must be 1 (grayscale) or 3 (RGB), got 2"))
    }
}

@Suite struct ImageFolderSplitTests {
    @Test func trainAndTestFolders() throws {
        let dir = TempDir()
        let px = DecodedImage(width: 1, height: 1, channels: 1, pixels: [9])
        for rel in ["r/train/a/1.png", "r/train/b/1.png", "r/train/b/2.png", "r/test/a/1.png", "r/test/b/1.png"] {
            dir.mkdir((rel as NSString).deletingLastPathComponent)
            try ImageCodec.writePNG(px, to: dir.sub(rel))
        }
        let (train, test) = try ImageFolder.loadTrainTest(root: dir.sub("r"), options: ImageFolderOptions(channels: 1, height: 1, width: 1))
        #expect(train.labels == [0, 1, 1] && test?.labels == [0, 1])
        #expect(train.summary.hasPrefix("3 images, 1x1x1, 2 classes"))
        // Without train/: the root is the only set.
        #expect(ImageFolder.trainTestFolders(root: dir.sub("r/train")) == (dir.sub("r/train"), nil))
        // Class folders must agree.
        dir.mkdir("r/test/c")
        try ImageCodec.writePNG(px, to: dir.sub("r/test/c/1.png"))
        let m = errorMessage { _ = try ImageFolder.loadTrainTest(root: dir.sub("r"), options: ImageFolderOptions(channels: 1, height: 1, width: 1)) }
        #expect(m.contains("class folders differ") && m.contains("only in one of them: c"))
        // Prediction inputs: (N, C, H, W), converted and resized.
        let two = try ImageFolder.loadImages(paths: [dir.sub("r/test/a/1.png"), dir.sub("r/test/c/1.png")],
                                             options: ImageFolderOptions(channels: 3, height: 1, width: 2))
        #expect(two == [UInt8](repeating: 9, count: 12))
    }
}

extension LazySequenceProtocol where Elements: Collection {
    /// The elements repeated `times` times.
    func cycled(_ times: Int) -> [Elements.Element] { (0..<times).flatMap { _ in Array(elements) } }
}
