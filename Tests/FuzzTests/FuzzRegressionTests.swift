import CNNCore
import Datasets
import Foundation
import NN
import Testing
import Training

/// Inputs the fuzzer found (or that its mutations approach only by luck), kept as plain cases so
/// that a fix cannot regress unnoticed whatever the fuzzer's seed.
@Suite struct FuzzRegressionTests {
    /// A safetensors file with `header` as its JSON header and `dataBytes` zero bytes of data.
    static func safetensors(_ header: String, dataBytes: Int = 8) -> Data {
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var n = UInt64(h.count).littleEndian
        return Data(withUnsafeBytes(of: &n) { Array($0) } + h + [UInt8](repeating: 0, count: dataBytes))
    }

    @Test(arguments: [
        // Found by the fuzzer: a negative dimension trapped in Shape.init.
        #"{"w":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}}"#,
        #"{"w":{"dtype":"F32","shape":[-2,-1],"data_offsets":[0,8]}}"#,
        // An element count that overflows Int (trapped in Shape.count or in count * 4).
        #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#,
        #"{"w":{"dtype":"I64","shape":[2305843009213693952],"data_offsets":[0,0]}}"#,
        // An end offset near Int.max (trapped in base + end).
        #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775800,9223372036854775807]}}"#,
        #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#,
    ])
    func hostileSafeTensorsHeadersAreErrors(_ header: String) {
        #expect(throws: CNNError.self) { try SafeTensors.decode(Self.safetensors(header), source: "bad.safetensors") }
    }

    @Test func zeroElementTensorsWithHugeDimensionsStillRead() throws {
        let (entries, _) = try SafeTensors.decode(Self.safetensors(#"{"e":{"dtype":"F32","shape":[0,9223372036854775807],"data_offsets":[0,0]}}"#),
                                                  source: "empty.safetensors")
        #expect(entries.count == 1 && entries[0].0 == "e")
    }

    /// Deeply nested JSON (a stack-overflow risk for recursive parsers) is an error.
    @Test func deeplyNestedJSONIsAnError() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: CNNError.self) { try SafeTensors.decode(Self.safetensors(deep, dataBytes: 0), source: "deep.safetensors") }
        let dir = FuzzTempDir("deep")
        dir.write("config.json", Array(("{\"augmentation\":" + deep + "}").utf8))
        #expect(throws: CNNError.self) { try TrainConfig.load(path: dir.sub("config.json")) }
    }
}

@Suite struct ConfigFuzzRegressionTests {
    /// Found by the fuzzer: `"cropPadding": 9223372036854775807` (zero padding) passed validation
    /// and overflowed `2 * cropPadding + 1` in Augmenter.draw.
    @Test func hugeCropPaddingIsRefusedAtLoad() throws {
        let dir = FuzzTempDir("crop")
        dir.write("config.json", Array(#"{"augmentation":{"cropPadding":9223372036854775807},"imageChannels":1}"#.utf8))
        let c = try TrainConfig.load(path: dir.sub("config.json"))
        let e = #expect(throws: CNNError.self) {
            _ = try Augmenter(config: c.augmentation, channels: c.imageChannels, height: c.imageSize, width: c.imageSize)
        }
        #expect(e?.message.contains("cropPadding = 9223372036854775807 must be in 0...32") == true)
        // The image's side itself is still allowed.
        _ = try Augmenter(config: AugmentationConfig(cropPadding: 32), channels: 3, height: 32, width: 32)
    }
}

@Suite struct ImageFuzzRegressionTests {
    /// `progressive-two-scans.jpg` (16x8 gray: one DC scan, one AC scan) with its AC scan repeated
    /// `repeats` times in all. A repeated first scan is a valid progression, and each one passes
    /// over the whole image: on a large image, thousands of them in a small file took hours.
    static func repeatedScans(_ repeats: Int) throws -> Data {
        let b = try Fuzz.corpusFile("progressive-two-scans.jpg")
        let sos = try #require((0..<(b.count - 1)).last { b[$0] == 0xFF && b[$0 + 1] == 0xDA })
        let scan = b[sos..<(b.count - 2)]
        var out = Array(b[..<sos])
        for _ in 0..<repeats { out += scan }
        return Data(out + [0xFF, 0xD9])
    }

    @Test func aJPEGWithThousandsOfScansIsRefused() throws {
        let ok = try ImageCodec.decode(try Self.repeatedScans(1))
        #expect(try ImageCodec.decode(try Self.repeatedScans(50)) == ok)
        let e = #expect(throws: CNNError.self) { try ImageCodec.decode(try Self.repeatedScans(2_000)) }
        #expect(e?.message.contains("more than 500 scans") == true)
    }
}

extension ImageFuzzRegressionTests {
    /// Found by the fuzzer (a 0.7 s, 1.2 GB decode): libpng allocates and zeroes an ancillary
    /// chunk's declared length before reading it. Here a 40-byte file declares a 2 GB zTXt.
    @Test func aPNGChunkLongerThanTheFileIsRefusedBeforeAllocating() throws {
        func be32(_ v: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
        let ihdr = Array("IHDR".utf8) + be32(3) + be32(6) + [8, 0, 0, 0, 0]
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + be32(13) + ihdr + be32(CRC32.checksum(ihdr))
            + be32(0x7FFF_FFF0) + Array("zTXt".utf8) + Array("Comment".utf8) + [0, 0]
        let peak = ProcessMemory.peakResidentBytes()
        let e = #expect(throws: CNNError.self) { try ImageCodec.decode(Data(png)) }
        #expect(e?.message.contains("chunk 'zTXt' at byte offset 33 declares 2147483632 bytes") == true)
        if let before = peak, let after = ProcessMemory.peakResidentBytes() { #expect(after - before < 1 << 30) }
    }
}
