import CNNCore
@testable import Datasets
import Foundation
import Testing

@Suite struct CIFAR10Tests {
    /// Writes data_batch_1..5 and test_batch with `perFile` records each; record r of file f has
    /// label (f + r) % 10 and pixels (100 f + r + j) % 256.
    func writeTinyCIFAR(_ dir: TempDir, perFile: Int = 3) -> String {
        let root = dir.mkdir("cifar-10-batches-bin")
        for (f, name) in (CIFAR10.trainingFiles + [CIFAR10.testFile]).enumerated() {
            let bytes = (0..<perFile).flatMap { r in cifarRecord(label: UInt8((f + r) % 10), seed: 100 * f + r) }
            dir.write("cifar-10-batches-bin/\(name)", bytes)
        }
        dir.write("cifar-10-batches-bin/batches.meta.txt", Array("a\nb\nc\nd\ne\n\nf\ng\nh\ni\nj\n".utf8))
        return root
    }

    @Test func readsTinyBatchesInOrder() throws {
        let dir = TempDir()
        let root = writeTinyCIFAR(dir)
        let train = try CIFAR10.load(.train, directory: root)
        #expect(train.count == 15 && train.channels == 3 && train.height == 32 && train.width == 32)
        #expect(train.classNames == ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
        #expect(train.labels == [0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5, 4, 5, 6])
        // Image 4 = file 1 (data_batch_2), record 1: pixel j is (100 + 1 + j) % 256, planes R, G, B.
        let img = Array(train.image(4))
        #expect(img[0] == 101 && img[1] == 102 && img[1024] == UInt8((101 + 1024) % 256) && img[3071] == UInt8((101 + 3071) % 256))
        let test = try CIFAR10.load(.test, directory: root)
        #expect(test.labels == [5, 6, 7] && Array(test.image(0))[0] == UInt8(500 % 256))
        // A limit takes the first records across files.
        let some = try CIFAR10.load(.train, directory: root, limit: 4)
        #expect(some.labels == [0, 1, 2, 1] && Array(some.image(3)) == Array(train.image(3)))
    }

    @Test func missingFileSaysWhereToPutTheData() throws {
        let dir = TempDir()
        dir.write("data_batch_1.bin", cifarRecord(label: 1, seed: 0))
        let m = errorMessage { _ = try CIFAR10.load(.train, directory: dir.path) }
        #expect(m.contains(dir.sub("data_batch_2.bin")) && m.contains("does not exist"))
        #expect(m.contains("./data/cifar-10-batches-bin") && m.contains("--data") && m.contains(CIFAR10.downloadURL))
        // Only the first record is wanted: the missing second file is never opened.
        #expect(try CIFAR10.load(.train, directory: dir.path, limit: 1).labels == [1])
    }

    @Test func truncatedFileNamesFileAndOffset() {
        let dir = TempDir()
        dir.write("test_batch.bin", cifarRecord(label: 1, seed: 0) + cifarRecord(label: 2, seed: 0) + [3] + [UInt8](repeating: 0, count: 99))
        let m = errorMessage { _ = try CIFAR10.load(.test, directory: dir.path) }
        #expect(m.contains(dir.sub("test_batch.bin")) && m.contains("truncated"))
        #expect(m.contains("record 2 starts at byte offset 6146") && m.contains("only 100 of its 3073 bytes"))
        dir.write("empty.bin", [])
        #expect(errorMessage { _ = try CIFAR10.readBatch(path: dir.sub("empty.bin")) }.contains("is empty"))
    }

    @Test func badLabelNamesFileAndRecord() {
        let dir = TempDir()
        dir.write("test_batch.bin", cifarRecord(label: 9, seed: 0) + cifarRecord(label: 10, seed: 0) + cifarRecord(label: 255, seed: 0))
        let m = errorMessage { _ = try CIFAR10.load(.test, directory: dir.path) }
        #expect(m.contains(dir.sub("test_batch.bin")) && m.contains("record 1 (byte offset 3073) has label 10"))
        #expect(m.contains("0...9"))
    }

    @Test func classNamesFileMustListTen() throws {
        let dir = TempDir()
        dir.write("test_batch.bin", cifarRecord(label: 0, seed: 0))
        #expect(try CIFAR10.load(.test, directory: dir.path).classNames == CIFAR10.defaultClassNames)
        dir.write("batches.meta.txt", Array("cat\ndog\n".utf8))
        let m = errorMessage { _ = try CIFAR10.load(.test, directory: dir.path) }
        #expect(m.contains(dir.sub("batches.meta.txt")) && m.contains("lists 2 class names"))
    }

    @Test(.enabled(if: sharedCIFARDirectory() != nil, "the shared CIFAR-10 copy is absent"))
    func realDataBatch1() throws {
        let dir = try #require(sharedCIFARDirectory())
        let batch1 = try CIFAR10.load(.train, directory: dir, limit: 10_000)
        #expect(batch1.classNames == CIFAR10.defaultClassNames)
        // The per-class counts of the official data_batch_1.
        #expect(batch1.classCounts() == [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981])
        // The first labels of the official files: frog truck truck deer automobile ... / cat ship ship airplane frog ...
        #expect(Array(batch1.labels.prefix(10)) == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3])
        let test = try CIFAR10.load(.test, directory: dir, limit: 10)
        #expect(test.labels == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1])
        // Every file is a whole number of 3073-byte records of 10,000 images.
        let size = try FileManager.default.attributesOfItem(atPath: dir + "/data_batch_3.bin")[.size] as? Int
        #expect(size == 10_000 * CIFAR10.recordSize)
        #expect(batch1.imbalanceWarning() == nil)
        #expect(batch1.classCountTable().contains("airplane     1005   10.1%"))
    }

    @Test func locatorOrder() throws {
        let dir = TempDir()
        let project = dir.mkdir("project")
        let shared = dir.mkdir("shared/data/cifar-10-batches-bin")
        dir.write("shared/data/cifar-10-batches-bin/test_batch.bin", cifarRecord(label: 0, seed: 0))
        var loc = CIFAR10Locator(workingDirectory: project, allowDownload: false, log: nil)
        #expect(try loc.resolve() == (project as NSString).appendingPathComponent("../shared/data/cifar-10-batches-bin"))
        _ = shared
        // ./data/cifar-10-batches-bin wins over ../shared.
        dir.mkdir("project/data/cifar-10-batches-bin")
        dir.write("project/data/cifar-10-batches-bin/data_batch_1.bin", cifarRecord(label: 0, seed: 0))
        #expect(try loc.resolve() == project + "/data/cifar-10-batches-bin")
        // An explicit path: the folder itself, or a folder holding cifar-10-batches-bin.
        loc.explicitPath = dir.sub("shared/data")
        #expect(try loc.resolve() == dir.sub("shared/data/cifar-10-batches-bin"))
        loc.explicitPath = "../shared/data/cifar-10-batches-bin"
        #expect(try loc.resolve() == project + "/../shared/data/cifar-10-batches-bin")
    }

    @Test func offlineErrorSaysWhereToPutTheFiles() throws {
        let dir = TempDir()
        // The working directory is a subfolder, so that the locator's `../shared/data` fallback is
        // inside this test's folder too, whatever lies beside the system's temporary folder.
        let work = dir.mkdir("work")
        // Downloading disabled.
        let off = CIFAR10Locator(workingDirectory: work, allowDownload: false, log: nil)
        let m1 = errorMessage { _ = try off.resolve() }
        #expect(m1.contains(work + "/data/cifar-10-batches-bin") && m1.contains("shared/data/cifar-10-batches-bin"), "\(m1)")
        #expect(m1.contains("--data") && m1.contains("tar -xzf"))
        // A CIFAR-10 folder in ../shared/data (as on the team's machines) is found without downloading.
        let shared = dir.mkdir("shared/data/cifar-10-batches-bin")
        dir.write("shared/data/cifar-10-batches-bin/test_batch.bin", cifarRecord(label: 1, seed: 1))
        let found = try off.resolve()
        #expect(URL(fileURLWithPath: found).standardizedFileURL.path == URL(fileURLWithPath: shared).standardizedFileURL.path)
        _ = shared
        // Download attempted but the server is unreachable (a closed local port: no network needed).
        // (Only without --data: a folder the user names is never downloaded into.)
        let other = dir.mkdir("other/work")
        let unreachable = CIFAR10Locator(workingDirectory: other,
                                         url: "http://127.0.0.1:9/cifar-10-binary.tar.gz", timeout: 5, log: nil)
        let m2 = errorMessage { _ = try unreachable.resolve() }
        #expect(m2.contains("download failed") && m2.contains("offline") && m2.contains(other + "/data/cifar-10-batches-bin"), "\(m2)")
        #expect(m2.contains("./data/cifar-10-batches-bin"))
    }

    @Test func downloadVerifiesMD5AndExtracts() throws {
        // A tiny archive in the official layout, served from a file:// URL.
        let dir = TempDir()
        let (archive, sum) = try tinyCIFARArchive(in: dir)
        let lines = LogLines()
        // Without --data the download goes into ./data (working directories in this test's folder,
        // so that their ../shared is too).
        let loc = CIFAR10Locator(workingDirectory: dir.mkdir("w1/work"),
                                 url: URL(fileURLWithPath: archive).absoluteString, md5: sum, log: { lines.add($0) })
        let found = try loc.resolve()
        #expect(found == dir.sub("w1/work/data/cifar-10-batches-bin"))
        #expect(try CIFAR10.load(.test, directory: found).labels == [7])
        #expect(lines.text.contains("MD5 \(sum) verified"))
        // A wrong checksum is refused and the bad download deleted.
        let wrong = CIFAR10Locator(workingDirectory: dir.mkdir("w2/work"),
                                   url: URL(fileURLWithPath: archive).absoluteString, md5: CIFAR10.archiveMD5, log: nil)
        let m = errorMessage { _ = try wrong.resolve() }
        #expect(m.contains("has MD5 \(sum), expected \(CIFAR10.archiveMD5)"))
        #expect(!FileManager.default.fileExists(atPath: dir.sub("w2/work/data/cifar-10-binary.tar.gz")))
    }

    @Test func progressBarRenders() {
        var bar = ProgressBar(label: "CIFAR-10")
        bar.lastDone = 81_300_000
        bar.lastTotal = 162_600_000
        let line = bar.render(now: bar.start + 10_000_000_000)
        #expect(line.hasPrefix("\rCIFAR-10 [" + String(repeating: "#", count: 15) + String(repeating: ".", count: 15) + "] 50%"))
        #expect(line.contains("81.3/162.6 MB") && line.contains("8.1 MB/s"))
    }
}

final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined() }
}

@Suite struct MD5Tests {
    @Test func rfc1321Vectors() {
        let vectors: [(String, String)] = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            ("12345678901234567890123456789012345678901234567890123456789012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a"),
            ("The quick brown fox jumps over the lazy dog", "9e107d9d372bb6826bd81d3542a419d6"),
        ]
        for (input, hex) in vectors { #expect(MD5.hash(Array(input.utf8)).hex == hex, "MD5(\"\(input)\")") }
        // 55, 56 and 64 bytes: the padding boundaries.
        #expect(MD5.hash([UInt8](repeating: 0x61, count: 1_000_000)).hex == "7707d6ae4e027c70eea2a935c2296f21")
    }

    @Test func streamingEqualsOneShotAndMd5sum() throws {
        var rng = SeededRNG(seed: 1)
        let data = (0..<100_003).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let one = MD5.hash(data)
        var h = MD5()
        var i = 0
        for step in [1, 63, 64, 65, 7, 1000, 55, 56] where i < data.count {
            h.update(data[i..<min(i + step, data.count)]); i += step
        }
        h.update(data[min(i, data.count)...])
        #expect(h.finalize() == one)
        let dir = TempDir()
        dir.write("blob", data)
        #expect(try MD5.hash(fileAt: dir.sub("blob")) == one)
        // Cross-check with the system md5sum where there is one.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["md5sum", dir.sub("blob")]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        if (try? p.run()) != nil {
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            if p.terminationStatus == 0 { #expect(text.hasPrefix(one.hex)) }
        }
    }
}
