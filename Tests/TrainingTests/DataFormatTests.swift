import Foundation
import SwiftCNN
import Testing

/// `--data DIR` without `--format`: the format is detected, and the user's folder is never written to.
@Suite struct DataFormatTests {
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
    }

    func listing(_ dir: URL) throws -> [String] { try FileManager.default.subpathsOfDirectory(atPath: dir.path).sorted() }

    func photos(in root: URL, classes: [String], perClass: Int = 3) throws -> URL {
        let dir = root.appendingPathComponent("photos")
        for (k, name) in classes.enumerated() {
            let c = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: c, withIntermediateDirectories: true)
            for i in 0..<perClass {
                let img = DecodedImage(width: 6, height: 5, channels: 3, pixels: [UInt8](repeating: UInt8(40 * k + i), count: 90))
                try ImageCodec.writePNG(img, to: c.appendingPathComponent("\(i).png").path)
            }
        }
        return dir
    }

    func config(data: String?) -> TrainConfig {
        var c = TrainConfig()
        c.data = data
        c.imageSize = 8
        c.validationFraction = 0.5
        c.evaluateTest = false
        return c
    }

    @Test func autoIsTheDefaultAndOldConfigsKeepTheirFormat() throws {
        #expect(TrainConfig().dataFormat == .auto)
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func load(_ json: String) throws -> TrainConfig {
            let p = dir.appendingPathComponent("c.json")
            try Data(json.utf8).write(to: p)
            return try TrainConfig.load(path: p.path)
        }
        #expect(try load(#"{"dataFormat": "cifar10"}"#).dataFormat == .cifar10)
        #expect(try load(#"{"dataFormat": "folder", "data": "x"}"#).dataFormat == .folder)
        #expect(try load(#"{"epochs": 2}"#).dataFormat == .auto)
        let bad = #expect(throws: (any Error).self) { _ = try load(#"{"dataFormat": "png"}"#) }
        #expect("\(bad.map { "\($0)" } ?? "")".contains("valid values: auto, cifar10, folder"))
    }

    @Test func autoTrainsOnClassFoldersAndWritesNothingIntoThem() throws {
        let root = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = try photos(in: root, classes: ["cat", "dog"])
        try Data("my notes".utf8).write(to: dir.appendingPathComponent("dog/notes.txt"))
        try Data([0, 0, 0, 1]).write(to: dir.appendingPathComponent(".DS_Store"))
        let before = try listing(root)
        let lines = Lines()
        let data = try TrainingData.load(config(data: dir.path), log: { lines.add($0) })
        #expect(data.classNames == ["cat", "dog"] && data.train.count == 6 && data.imageShape == [3, 8, 8])
        #expect(lines.text.contains("holds class folders of images (format folder)"), "\(lines.text)")
        #expect(lines.text.contains("skipped 1 file without an image extension") && lines.text.contains("1 hidden file"), "\(lines.text)")
        #expect(try listing(root) == before)
    }

    @Test func autoFindsCIFARAndRefusesAnythingElseWithoutWriting() throws {
        let root = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        // A tiny CIFAR-10 folder: 2 records per batch file.
        let cifar = root.appendingPathComponent("mine/cifar-10-batches-bin")
        try FileManager.default.createDirectory(at: cifar, withIntermediateDirectories: true)
        for (f, name) in (CIFAR10.trainingFiles + [CIFAR10.testFile]).enumerated() {
            let bytes = (0..<2).flatMap { r in [UInt8((f + r) % 10)] + [UInt8](repeating: UInt8(r), count: 3072) }
            try Data(bytes).write(to: cifar.appendingPathComponent(name))
        }
        var c = config(data: root.appendingPathComponent("mine").path)
        c.evaluateTest = true
        let lines = Lines()
        let data = try TrainingData.load(c, log: { lines.add($0) })
        #expect(data.train.count == 10 && data.test?.count == 2 && data.classNames == CIFAR10.defaultClassNames)
        #expect(lines.text.contains("CIFAR-10 batch files (format cifar10)"))

        // Neither format: an error saying what is there and what is expected; nothing written.
        let junk = root.appendingPathComponent("junk")
        try FileManager.default.createDirectory(at: junk, withIntermediateDirectories: true)
        try Data("a,b\n".utf8).write(to: junk.appendingPathComponent("labels.csv"))
        let photos = try photos(in: root, classes: ["cat", "dog"])
        let before = try listing(root)
        var m = "\((#expect(throws: (any Error).self) { _ = try TrainingData.load(config(data: junk.path), log: { _ in }) }).map { "\($0)" } ?? "")"
        #expect(m.contains("holds 1 file (labels.csv)") && m.contains("Expected either"), "\(m)")
        // An old config that says cifar10, pointed at a photo folder: refused, not downloaded into.
        var old = config(data: photos.path)
        old.dataFormat = .cifar10
        m = "\((#expect(throws: (any Error).self) { _ = try TrainingData.load(old, log: { _ in }) }).map { "\($0)" } ?? "")"
        #expect(m.contains("nothing is downloaded into it") && m.contains("--format folder"), "\(m)")
        #expect(try listing(root) == before)
    }

    @Test func autoTakesTrainAndTestFolders() throws {
        // DIR/train/<class> and DIR/test/<class>: trained on train, tested on test.
        let root = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let photos = try photos(in: root, classes: ["cat", "dog"])
        let split = root.appendingPathComponent("split")
        try FileManager.default.createDirectory(at: split, withIntermediateDirectories: true)
        try FileManager.default.moveItem(at: photos, to: split.appendingPathComponent("train"))
        _ = try self.photos(in: root, classes: ["cat", "dog"], perClass: 1)
        try FileManager.default.moveItem(at: photos, to: split.appendingPathComponent("test"))
        var c = config(data: split.path)
        c.evaluateTest = true
        let lines = Lines()
        let data = try TrainingData.load(c, log: { lines.add($0) })
        #expect(data.train.count == 6 && data.test?.count == 2 && data.classNames == ["cat", "dog"])
        #expect(lines.text.contains("holds train and test folders of class folders"), "\(lines.text)")
    }

    @Test func aSingleClassIsRefused() throws {
        let root = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = try photos(in: root, classes: ["cat"])
        let m = "\((#expect(throws: (any Error).self) { _ = try TrainingData.load(config(data: dir.path), log: { _ in }) }).map { "\($0)" } ?? "")"
        #expect(m.contains("has one class folder ('cat')") && m.contains("at least two"), "\(m)")
    }
}
