import CNNCore
@testable import Datasets
import Foundation
import Testing

/// A minimal PNG writer for the layouts our own encoder does not write (16-bit, palette, gray +
/// alpha, sub-byte gray): stored (uncompressed) deflate blocks, CRC-32 and Adler-32 by hand.
enum MiniPNG {
    /// `rows`: each row's packed sample bytes, without the filter byte.
    static func encode(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]],
                       palette: [UInt8]? = nil, transparency: [UInt8]? = nil) -> [UInt8] {
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, 0])
        if let palette { out += chunk("PLTE", palette) }
        if let transparency { out += chunk("tRNS", transparency) }
        out += chunk("IDAT", zlibStored(rows.flatMap { [0] + $0 }))
        out += chunk("IEND", [])
        return out
    }

    static func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let td = Array(type.utf8) + data
        return be32(data.count) + td + be32(Int(crc32(td)))
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return c ^ 0xFFFF_FFFF
    }

    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65_535, data.count - i)
            let final: UInt8 = i + n == data.count ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[i..<(i + n)]
            i += n
        } while i < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for x in data { a = (a + UInt32(x)) % 65_521; b = (b + a) % 65_521 }
        return out + be32(Int(b << 16 | a))
    }
}

@Suite struct ImageDecodingReliabilityTests {
    func decode(_ bytes: [UInt8]) throws -> DecodedImage { try ImageCodec.decode(Data(bytes)) }

    @Test func sixteenBitPNGIsReducedTo8Bits() throws {
        // RGB 16-bit: each sample v * 257 (so truncating and scaling agree on v).
        let rgb = MiniPNG.encode(width: 2, height: 1, bitDepth: 16, colorType: 2,
                                 rows: [[10, 10, 200, 200, 255, 255, 0, 0, 1, 1, 128, 128]])
        let a = try decode(rgb)
        #expect(a.channels == 3 && a.pixels == [10, 200, 255, 0, 1, 128])
        // Gray 16-bit.
        let gray = MiniPNG.encode(width: 2, height: 1, bitDepth: 16, colorType: 0, rows: [[7, 7, 250, 250]])
        #expect(try decode(gray) == DecodedImage(width: 2, height: 1, channels: 1, pixels: [7, 250]))
        // RGBA 16-bit: alpha dropped.
        let rgba = MiniPNG.encode(width: 1, height: 1, bitDepth: 16, colorType: 6, rows: [[1, 1, 2, 2, 3, 3, 0, 0]])
        #expect(try decode(rgba).pixels == [1, 2, 3])
    }

    @Test func palettePNGIsExpandedToRGB() throws {
        let palette: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255]
        let eight = MiniPNG.encode(width: 3, height: 1, bitDepth: 8, colorType: 3, rows: [[2, 0, 1]], palette: palette)
        #expect(try decode(eight).pixels == [0, 0, 255, 255, 0, 0, 0, 255, 0])
        // 2-bit indices, with a transparency table (alpha dropped, colour kept).
        let two = MiniPNG.encode(width: 3, height: 1, bitDepth: 2, colorType: 3, rows: [[0b01_10_00_00]],
                                 palette: palette, transparency: [0, 128])
        #expect(try decode(two).pixels == [0, 255, 0, 0, 0, 255, 255, 0, 0])
        // An index past the palette: libpng maps it to black or refuses it; either way no crash.
        let bad = MiniPNG.encode(width: 1, height: 1, bitDepth: 8, colorType: 3, rows: [[7]], palette: palette)
        _ = try? decode(bad)
    }

    @Test func grayAlphaAndSubByteGray() throws {
        let ga = MiniPNG.encode(width: 2, height: 1, bitDepth: 8, colorType: 4, rows: [[40, 0, 90, 255]])
        #expect(try decode(ga) == DecodedImage(width: 2, height: 1, channels: 1, pixels: [40, 90]))
        let oneBit = MiniPNG.encode(width: 3, height: 1, bitDepth: 1, colorType: 0, rows: [[0b1010_0000]])
        #expect(try decode(oneBit).pixels == [255, 0, 255])
        // Gray is repeated into R, G, B for a 3-channel model.
        #expect(ImageCodec.convert(try decode(ga), channels: 3).pixels == [40, 40, 40, 90, 90, 90])
    }

    @Test func hugeHeaderIsRefusedBeforeAllocating() throws {
        // The header claims 100,000 x 100,000 pixels (30 GB decoded) over 1 row of data.
        let forged = MiniPNG.encode(width: 100_000, height: 100_000, bitDepth: 8, colorType: 2, rows: [[1, 2, 3]])
        let start = Date()
        let m = errorMessage { _ = try decode(forged) }
        #expect(m.contains("100000x100000 pixels, more than the limit of 100000000"), "\(m)")
        // Decoding 30 GB would take minutes (or fail for memory); the refusal takes milliseconds. The
        // bound is loose because CI runs the whole suite in parallel on 2 cores.
        #expect(Date().timeIntervalSince(start) < 20)
        // Within the limit but with missing rows: truncated, refused.
        let short = MiniPNG.encode(width: 4, height: 4, bitDepth: 8, colorType: 2, rows: [[UInt8](repeating: 9, count: 12)])
        #expect(!errorMessage { _ = try decode(short) }.isEmpty)
    }

    @Test func cmykJPEGIsConvertedToRGB() throws {
        let dir = TempDir()
        // Adobe (inverted) CMYK for pure red: C 0, M 255, Y 255, K 0 stored as 255 - value.
        let red = DecodedImage(width: 8, height: 8, channels: 4, pixels: Array([UInt8]([255, 0, 0, 255]).lazy.cycled(64)))
        try ImageCodec.writeJPEG(red, to: dir.sub("cmyk.jpg"), quality: 95)
        let img = try ImageCodec.decode(fileAt: dir.sub("cmyk.jpg"))
        #expect(img.channels == 3 && img.width == 8 && img.height == 8)
        let (r, g, b) = (img.pixels[0], img.pixels[1], img.pixels[2])
        #expect(r > 245 && g < 10 && b < 10, "\(r) \(g) \(b)")
        // A half-grey (K 50%) in the same convention.
        let grey = DecodedImage(width: 8, height: 8, channels: 4, pixels: Array([UInt8]([255, 255, 255, 128]).lazy.cycled(64)))
        try ImageCodec.writeJPEG(grey, to: dir.sub("grey.jpg"), quality: 95)
        let gp = try ImageCodec.decode(fileAt: dir.sub("grey.jpg")).pixels
        #expect(gp.prefix(3).allSatisfy { abs(Int($0) - 128) <= 3 }, "\(Array(gp.prefix(3)))")
    }

    @Test func aFileTooLargeForThePixelLimitIsNotRead() throws {
        // 2 MiB of zeros (sparse) named .png, with a 1,000-pixel limit: refused from its size alone.
        let dir = TempDir()
        let path = dir.sub("big.png")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.truncate(atOffset: 2 << 20)
        try h.close()
        let m = errorMessage { _ = try ImageCodec.decode(fileAt: path, maxPixels: 1_000) }
        #expect(m.contains(path) && m.contains("is 2097152 bytes, more than an image of at most 1000 pixels can take"), "\(m)")
        // Through a symbolic link, the size is the image's, not the link's.
        let link = dir.sub("link.png")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        #expect(errorMessage { _ = try ImageCodec.decode(fileAt: link, maxPixels: 1_000) }.contains("is 2097152 bytes"))
        // The default limit (100 megapixels) leaves room for any real image file.
        #expect(errorMessage { _ = try ImageCodec.decode(fileAt: path) }.contains("not a PNG or JPEG"))
    }

    @Test func contentDecidesTheFormatNotTheName() throws {
        let dir = TempDir()
        let img = DecodedImage(width: 2, height: 1, channels: 1, pixels: [0, 255])
        try ImageCodec.writePNG(img, to: dir.sub("really-a-png.jpg"))
        #expect(try ImageCodec.decode(fileAt: dir.sub("really-a-png.jpg")) == img)
    }
}

@Suite struct ImageFolderReliabilityTests {
    let px = DecodedImage(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 90, count: 12))

    @Test func nonImagesHiddenFilesAndSubfoldersAreSkippedWithAWarning() throws {
        let dir = TempDir()
        dir.mkdir("r/cat/more"); dir.mkdir("r/dog"); dir.mkdir("r/.git")
        try ImageCodec.writePNG(px, to: dir.sub("r/cat/a.png"))
        try ImageCodec.writePNG(px, to: dir.sub("r/cat/more/b.png"))
        try ImageCodec.writePNG(px, to: dir.sub("r/dog/c.png"))
        dir.write("r/.DS_Store", [0, 0, 0, 1])
        dir.write("r/cat/.DS_Store", [0, 0, 0, 1])
        dir.write("r/dog/._c.png", [0, 5, 22, 7])   // macOS resource fork: hidden, not decoded
        dir.write("r/dog/notes.txt", Array("hello".utf8))
        dir.write("r/README.md", Array("# my photos".utf8))   // a file in the root is not a class
        let lines = LogLines()
        let d = try ImageFolder.load(root: dir.sub("r"), options: ImageFolderOptions(height: 2, width: 2), log: { lines.add($0) })
        #expect(d.classNames == ["cat", "dog"] && d.count == 2)
        let w = lines.text
        #expect(w.contains("warning: image folder \(dir.sub("r")): skipped 1 file without an image extension"), "\(w)")
        #expect(w.contains(dir.sub("r/dog/notes.txt")) && w.contains("4 hidden files") && w.contains("1 folder inside class folders")
                && w.contains("1 file outside the class folders, e.g. \(dir.sub("r/README.md"))"), "\(w)")
        #expect(d.source.contains("skipped 1 non-image files, 4 hidden, 1 sub-folders"), "\(d.source)")
    }

    @Test func namedPipesAreSkippedNotRead() throws {
        // Reading a pipe with no writer would block forever: it is skipped, with a warning.
        let dir = TempDir()
        dir.mkdir("r/cat"); dir.mkdir("r/dog")
        try ImageCodec.writePNG(px, to: dir.sub("r/cat/a.png"))
        try ImageCodec.writePNG(px, to: dir.sub("r/dog/b.png"))
        try #require(mkfifo(dir.sub("r/cat/pipe.png"), 0o600) == 0)
        let lines = LogLines()
        let d = try ImageFolder.load(root: dir.sub("r"), options: ImageFolderOptions(height: 2, width: 2), log: { lines.add($0) })
        #expect(d.count == 2 && lines.text.contains("1 pipe/socket/device (not regular files), e.g. \(dir.sub("r/cat/pipe.png"))"), "\(lines.text)")
    }

    @Test func symlinkLoopsAreNamedAndNeverHang() throws {
        let dir = TempDir()
        let fm = FileManager.default
        dir.mkdir("r/cat"); dir.mkdir("r/dog")
        try ImageCodec.writePNG(px, to: dir.sub("r/cat/a.png"))
        try ImageCodec.writePNG(px, to: dir.sub("r/dog/b.png"))
        // A link to itself inside a class folder.
        try fm.createSymbolicLink(atPath: dir.sub("r/cat/loop.png"), withDestinationPath: "loop.png")
        var m = errorMessage { _ = try ImageFolder.load(root: dir.sub("r")) }
        #expect(m.contains(dir.sub("r/cat/loop.png")) && m.contains("symbolic link loop"), "\(m)")
        // A link to nothing.
        try fm.removeItem(atPath: dir.sub("r/cat/loop.png"))
        try fm.createSymbolicLink(atPath: dir.sub("r/cat/gone.png"), withDestinationPath: dir.sub("nowhere.png"))
        m = errorMessage { _ = try ImageFolder.load(root: dir.sub("r")) }
        #expect(m.contains(dir.sub("r/cat/gone.png")) && m.contains("does not exist"), "\(m)")
        try fm.removeItem(atPath: dir.sub("r/cat/gone.png"))
        // A class folder that links back to the root: read one level only, so it ends; it has no
        // images of its own (only folders), so it is refused by name.
        try fm.createSymbolicLink(atPath: dir.sub("r/zself"), withDestinationPath: dir.sub("r"))
        m = errorMessage { _ = try ImageFolder.load(root: dir.sub("r")) }
        #expect(m.contains("class folder \(dir.sub("r/zself")) (class 'zself') has no images"), "\(m)")
        // A symlinked class folder with images is an ordinary class.
        try fm.removeItem(atPath: dir.sub("r/zself"))
        try fm.createSymbolicLink(atPath: dir.sub("r/emu"), withDestinationPath: dir.sub("r/dog"))
        #expect(try ImageFolder.load(root: dir.sub("r")).classNames == ["cat", "dog", "emu"])
    }

    @Test func badImagesInAFolderAreNamed() throws {
        // Every kind of bad file, each alone beside a good one: the error names that file.
        let dir = TempDir()
        dir.mkdir("r/a"); dir.mkdir("r/b")
        try ImageCodec.writePNG(px, to: dir.sub("r/a/good.png"))
        try ImageCodec.writePNG(px, to: dir.sub("r/b/good.png"))
        let bad: [(String, [UInt8], String)] = [
            ("zero.png", [], "empty"),
            ("text.jpg", Array("not a jpeg".utf8), "not a PNG or JPEG"),
            ("cut.png", Array(MiniPNG.encode(width: 2, height: 2, bitDepth: 8, colorType: 2, rows: [[1, 2, 3, 4, 5, 6], [7, 8, 9, 1, 2, 3]]).prefix(40)), "truncated"),
            ("huge.png", MiniPNG.encode(width: 50_000, height: 50_000, bitDepth: 8, colorType: 0, rows: [[0]]), "more than the limit"),
        ]
        for (name, bytes, why) in bad {
            dir.write("r/b/" + name, bytes)
            let m = errorMessage { _ = try ImageFolder.load(root: dir.sub("r"), options: ImageFolderOptions(height: 2, width: 2)) }
            #expect(m.contains(dir.sub("r/b/" + name)) && m.contains(why) && m.contains("Delete or replace the file"), "\(name): \(m)")
            try FileManager.default.removeItem(atPath: dir.sub("r/b/" + name))
        }
    }
}

@Suite struct DataDetectionTests {
    let px = DecodedImage(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 90, count: 12))

    @Test func cifarAndImageFoldersAreTold() throws {
        let dir = TempDir()
        dir.mkdir("c/cifar-10-batches-bin")
        dir.write("c/cifar-10-batches-bin/test_batch.bin", cifarRecord(label: 1, seed: 0))
        #expect(try DataDetection.detect(dir.sub("c")) == .cifar10(directory: dir.sub("c/cifar-10-batches-bin")))
        #expect(try DataDetection.detect(dir.sub("c/cifar-10-batches-bin")) == .cifar10(directory: dir.sub("c/cifar-10-batches-bin")))
        dir.mkdir("photos/cat"); dir.mkdir("photos/dog")
        try ImageCodec.writePNG(px, to: dir.sub("photos/cat/1.png"))
        try ImageCodec.writeJPEG(px, to: dir.sub("photos/dog/1.JPG"))
        #expect(try DataDetection.detect(dir.sub("photos")) == .imageFolder(root: dir.sub("photos")))
        // A single class folder is still an image folder (training refuses it, naming the class).
        dir.mkdir("one/cat")
        try ImageCodec.writePNG(px, to: dir.sub("one/cat/1.png"))
        #expect(try DataDetection.detect(dir.sub("one")) == .imageFolder(root: dir.sub("one")))
    }

    @Test func anythingElseSaysWhatWasFoundAndWhatIsExpected() throws {
        let dir = TempDir()
        var m = errorMessage { _ = try DataDetection.detect(dir.sub("missing")) }
        #expect(m.contains("\(dir.sub("missing")) does not exist") && m.contains("Expected either"))
        dir.mkdir("empty")
        m = errorMessage { _ = try DataDetection.detect(dir.sub("empty")) }
        #expect(m.contains("\(dir.sub("empty")) is empty") && m.contains("<class>/<image>") && m.contains("data_batch_1.bin"), "\(m)")
        dir.mkdir("flat")
        try ImageCodec.writePNG(px, to: dir.sub("flat/1.png"))
        try ImageCodec.writePNG(px, to: dir.sub("flat/2.png"))
        m = errorMessage { _ = try DataDetection.detect(dir.sub("flat")) }
        #expect(m.contains("2 images lie directly in it") && m.contains("own sub-folder"), "\(m)")
        dir.mkdir("junk/empty-class")
        dir.write("junk/a.csv", [1]); dir.write("junk/b.bin", [2]); dir.write("junk/.DS_Store", [3])
        m = errorMessage { _ = try DataDetection.detect(dir.sub("junk")) }
        #expect(m.contains("holds 2 files (a.csv, b.bin) and 1 folder without images (empty-class)"), "\(m)")
        // The train/test layout is an image folder with a test folder (test, else val, else none).
        dir.mkdir("split/train/cat"); dir.mkdir("split/val/cat")
        try ImageCodec.writePNG(px, to: dir.sub("split/train/cat/1.png"))
        #expect(try DataDetection.detect(dir.sub("split")) == .imageFolder(root: dir.sub("split/train"), test: dir.sub("split/val")))
        dir.mkdir("split/test/cat")
        #expect(try DataDetection.detect(dir.sub("split")) == .imageFolder(root: dir.sub("split/train"), test: dir.sub("split/test")))
        dir.mkdir("notsplit/train/cat")
        m = errorMessage { _ = try DataDetection.detect(dir.sub("notsplit")) }
        #expect(m.contains("holds 1 folder without images (train)"), "\(m)")
        // A batch file instead of its folder.
        dir.write("data_batch_1.bin", cifarRecord(label: 0, seed: 0))
        m = errorMessage { _ = try DataDetection.detect(dir.sub("data_batch_1.bin")) }
        #expect(m.contains("is a file") && m.contains("--data \(dir.path)"), "\(m)")
    }

    @Test func aFolderGivenByTheUserIsNeverDownloadedInto() throws {
        // A working archive is on offer (file:// URL), yet nothing is fetched into the user's folder.
        let dir = TempDir()
        let (archive, sum) = try tinyCIFARArchive(in: dir)
        dir.mkdir("photos/cat")
        try ImageCodec.writePNG(px, to: dir.sub("photos/cat/1.png"))
        for mine in ["photos", "emptyfolder"] {
            dir.mkdir(mine)
            let before = try FileManager.default.subpathsOfDirectory(atPath: dir.sub(mine)).sorted()
            let loc = CIFAR10Locator(explicitPath: dir.sub(mine), workingDirectory: dir.path,
                                     url: URL(fileURLWithPath: archive).absoluteString, md5: sum, log: nil)
            let m = errorMessage { _ = try loc.resolve() }
            #expect(m.contains("no CIFAR-10 batch files in \(dir.sub(mine))") && m.contains("nothing is downloaded into it"), "\(m)")
            if mine == "photos" { #expect(m.contains("--format folder"), "\(m)") }
            #expect(try FileManager.default.subpathsOfDirectory(atPath: dir.sub(mine)).sorted() == before)
        }
    }
}

@Suite struct CIFARBatchReliabilityTests {
    @Test func oversizedBatchIsRefused() throws {
        let dir = TempDir()
        // 10,001 records: the size is a whole number of records, but too many for one batch. The
        // file is sparse (zeros), so the test writes almost nothing.
        let path = dir.sub("data_batch_1.bin")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.truncate(atOffset: UInt64(10_001 * CIFAR10.recordSize))
        try h.close()
        let m = errorMessage { _ = try CIFAR10.readBatch(path: path) }
        #expect(m.contains(path) && m.contains("too large") && m.contains("10001 records")
                && m.contains("record 10000 starts at byte offset 30730000"), "\(m)")
        // Exactly 10,000 records is a batch.
        let h2 = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h2.truncate(atOffset: UInt64(10_000 * CIFAR10.recordSize))
        try h2.close()
        #expect(try CIFAR10.readBatch(path: path, limit: 2).labels == [0, 0])
    }

    @Test func aPipeInPlaceOfABatchIsRefusedNotOpened() throws {
        let dir = TempDir()
        try #require(mkfifo(dir.sub("test_batch.bin"), 0o600) == 0)
        let m = errorMessage { _ = try CIFAR10.load(.test, directory: dir.path) }
        #expect(m.contains(dir.sub("test_batch.bin")) && m.contains("not a regular file"), "\(m)")
    }

    @Test func labelAtTheClassCountIsRefusedInALaterChunk() {
        // Record 1,500 (in the second 1,000-record chunk) has label 10: named with its offset.
        let dir = TempDir()
        var bytes = [UInt8](repeating: 0, count: 1_501 * CIFAR10.recordSize)
        bytes[1_500 * CIFAR10.recordSize] = 10
        dir.write("test_batch.bin", bytes)
        dir.write("batches.meta.txt", Array("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n".utf8))
        let m = errorMessage { _ = try CIFAR10.load(.test, directory: dir.path) }
        #expect(m.contains("record 1500 (byte offset \(1_500 * CIFAR10.recordSize)) has label 10") && m.contains("re-download"), "\(m)")
    }
}
