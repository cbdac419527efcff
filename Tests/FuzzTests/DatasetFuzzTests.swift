import CNNCore
import Datasets
import Foundation
import Testing

/// A fresh temporary directory, removed when the value is released.
final class FuzzTempDir {
    let path: String
    init(_ name: String) {
        path = NSTemporaryDirectory() + "swiftcnn-fuzz-\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func sub(_ p: String) -> String { (path as NSString).appendingPathComponent(p) }
    func write(_ p: String, _ bytes: [UInt8]) { Fuzz.writeFile(sub(p), bytes) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct DatasetFuzzTests {
    /// A 2-record CIFAR-10 batch (labels 3 and 9).
    static let cifarSeed: [UInt8] = [3] + (0..<3072).map { UInt8($0 % 251) } + [9] + (0..<3072).map { UInt8(($0 * 7) % 256) }

    /// CIFAR-10's batch reader through `load`, as training reads it (test_batch.bin plus the
    /// official class names): any bytes give a dataset whose sizes agree, or a CNNError.
    @Test func cifar10BatchReaderSurvivesMutations() throws {
        let dir = FuzzTempDir("cifar")
        let record = CIFAR10.recordSize
        let report = Fuzz.run("cifar10-batch", corpus: [Self.cifarSeed], iterations: Fuzz.iterations(default: 2_000), seed: 10,
                              fields: [0, record, record - 1, 2 * record - 1], maxLength: 4 * record) { bytes in
            dir.write(CIFAR10.testFile, bytes)
            let ds = try CIFAR10.load(.test, directory: dir.path, limit: bytes.count % 3 == 0 ? 1 : 4)
            #expect(ds.count >= 1 && ds.count <= 4 && ds.labels.allSatisfy { (0...9).contains($0) })
            #expect(ds.channels == 3 && ds.height == 32 && ds.width == 32)
        }
        #expect(report.executions > 0 && report.otherErrors.isEmpty)
    }

    /// batches.meta.txt (the class names) beside a valid batch.
    @Test func cifar10ClassNamesSurviveMutations() throws {
        let dir = FuzzTempDir("cifar-meta")
        dir.write(CIFAR10.testFile, Array(Self.cifarSeed.prefix(CIFAR10.recordSize)))
        let names = Array("airplane\nautomobile\nbird\ncat\ndeer\n\ndog\nfrog\nhorse\nship\ntruck\n".utf8)
        let report = Fuzz.run("cifar10-meta", corpus: [names], iterations: Fuzz.iterations(default: 1_000), seed: 11,
                              dictionary: ["\n", "\r\n", " ", "\u{0}", "\u{FEFF}", "é", "\u{2028}"].map { Array($0.utf8) } + [[0xC3], [0xFF, 0xFE]]) { bytes in
            dir.write(CIFAR10.metaFile, bytes)
            let ds = try CIFAR10.load(.test, directory: dir.path, limit: 4)
            #expect(ds.classNames.count == 10)
        }
        #expect(report.otherErrors.isEmpty)
    }

    // ------------------------------------------------------------ image decoders

    /// A small RGB and a gray image, written by our own encoders.
    static func encodedSeeds(_ format: ImageCodec.Format) throws -> [[UInt8]] {
        let dir = FuzzTempDir("seeds")
        let rgb = DecodedImage(width: 5, height: 4, channels: 3, pixels: (0..<60).map { UInt8(($0 * 37) % 256) })
        let gray = DecodedImage(width: 3, height: 6, channels: 1, pixels: (0..<18).map { UInt8($0 * 13) })
        var out: [[UInt8]] = []
        for (i, img) in [rgb, gray].enumerated() {
            let path = dir.sub("\(i).\(format.rawValue)")
            if format == .png { try ImageCodec.writePNG(img, to: path) } else { try ImageCodec.writeJPEG(img, to: path, quality: 80) }
            out.append([UInt8](FileManager.default.contents(atPath: path)!))
        }
        return out
    }

    /// What the image-folder loader does with a decoded image: colour conversion, resize, planes.
    static func decodeAndUse(_ bytes: [UInt8]) throws {
        let img = try ImageCodec.decode(Data(bytes), maxPixels: 1 << 16)
        #expect(img.width >= 1 && img.height >= 1 && img.width * img.height <= 1 << 16)
        #expect((img.channels == 1 || img.channels == 3) && img.pixels.count == img.width * img.height * img.channels)
        let rgb = ImageCodec.convert(img, channels: 3)
        let small = ImageCodec.resize(rgb, width: 8, height: 8)
        #expect(small.planes.count == 8 * 8 * 3)
    }

    /// PNG chunk names and the IHDR's fields (width 16, height 20, depth 24, colour type 25,
    /// interlace 28) and the first chunk lengths.
    static let pngDictionary = ["IHDR", "PLTE", "tRNS", "IDAT", "IEND", "gAMA", "iCCP", "zTXt", "sBIT", "acTL", "fdAT", "sPLT"].map { Array($0.utf8) }
        + [[0, 0, 0, 0], [0x7F, 0xFF, 0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0xFF], [0x78, 0x9C], [8], [16], [3], [6], [1]]

    /// Recomputes every chunk's CRC so that libpng reads past a mutated chunk.
    static func fixPNGChecksums(_ b: inout [UInt8], _ rng: inout SeededRNG) {
        var at = 8
        while at + 12 <= b.count {
            let len = Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3])
            let end = at + 8 + len
            guard len >= 0, end + 4 <= b.count else { return }
            let crc = CRC32.checksum(b[(at + 4)..<end])
            for k in 0..<4 { b[end + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(k))) }
            at = end + 4
        }
    }

    @Test func pngDecoderSurvivesMutations() throws {
        let corpus = try Self.encodedSeeds(.png) + ["palette-trns.png", "interlaced-gray16-alpha.png", "gray1.png"].map(Fuzz.corpusFile)
        let report = Fuzz.run("png", corpus: corpus, iterations: Fuzz.iterations(default: 3_000), seed: 20,
                              dictionary: Self.pngDictionary, fields: [8, 16, 20, 24, 25, 28, 33],
                              fixup: Self.fixPNGChecksums, Self.decodeAndUse)
        #expect(report.otherErrors.isEmpty)
    }

    /// JPEG markers (SOI, EOI, SOS, SOF0/2, DHT, DQT, DRI, RST0, APP0, APP14 Adobe, COM).
    static let jpegDictionary: [[UInt8]] = [[0xFF, 0xD8], [0xFF, 0xD9], [0xFF, 0xDA], [0xFF, 0xC0], [0xFF, 0xC2], [0xFF, 0xC4],
                                            [0xFF, 0xDB], [0xFF, 0xDD], [0xFF, 0xD0], [0xFF, 0xE0], [0xFF, 0xEE], [0xFF, 0xFE],
                                            [0xFF, 0xC3], [0xFF, 0xCF], [0x00, 0x00], [0xFF, 0xFF], [0x11], [0x22], [4]]

    /// The offsets of every marker's length field and of the SOF's height and width.
    static func jpegFields(_ seeds: [[UInt8]]) -> [Int] {
        var out: Set<Int> = []
        for b in seeds {
            var i = 2
            while i + 4 < b.count {
                if b[i] == 0xFF, b[i + 1] != 0, b[i + 1] != 0xFF, !(0xD0...0xD9).contains(b[i + 1]) {
                    out.insert(i + 2)
                    if (0xC0...0xC3).contains(b[i + 1]) { out.formUnion([i + 5, i + 7, i + 9]) }
                    if b[i + 1] == 0xDA { break }
                    i += 2 + (Int(b[i + 2]) << 8 | Int(b[i + 3]))
                } else { i += 1 }
            }
        }
        return out.sorted()
    }

    @Test func jpegDecoderSurvivesMutations() throws {
        let corpus = try Self.encodedSeeds(.jpeg) + ["progressive.jpg", "gray-restart.jpg"].map(Fuzz.corpusFile)
        let report = Fuzz.run("jpeg", corpus: corpus, iterations: Fuzz.iterations(default: 3_000), seed: 30,
                              dictionary: Self.jpegDictionary, fields: Self.jpegFields(corpus), Self.decodeAndUse)
        #expect(report.otherErrors.isEmpty)
    }
}
