import Foundation
import SwiftCNN
import Testing

/// Locations the tests share.
enum TestData {
    /// The package root (tests run from anywhere).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// CIFAR-10 binary folder: $SWIFTCNN_CIFAR, ./data/cifar-10-batches-bin, or ../shared/data/cifar-10-batches-bin; nil if absent.
    static let cifarDirectory: String? = {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["SWIFTCNN_CIFAR"] { candidates.append(env) }
        candidates.append(packageRoot.appendingPathComponent("data/cifar-10-batches-bin").path)
        candidates.append(packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/cifar-10-batches-bin").path)
        return candidates.first { FileManager.default.fileExists(atPath: ($0 as NSString).appendingPathComponent("test_batch.bin")) }
    }()

    /// A Python with torch and safetensors: $SWIFTCNN_PYTHON, ~/torchvenv/bin/python3, or python3; nil if none.
    static let torchPython: String? = {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["SWIFTCNN_PYTHON"] { candidates.append(env) }
        candidates.append(NSString(string: "~/torchvenv/bin/python3").expandingTildeInPath)
        candidates.append("/usr/bin/python3")
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) {
            if (try? run(c, ["-c", "import torch, safetensors"]))?.status == 0 { return c }
        }
        return nil
    }()

    static func temporaryDirectory() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("swiftcnn-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    @discardableResult
    static func run(_ exe: String, _ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// A resumed run equals the uninterrupted one: every epoch's metrics and the final weights.
func expectSameRun(_ full: Trainer, _ ra: TrainResult, _ resumed: Trainer, _ rb: TrainResult,
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    func key(_ m: EpochMetrics) -> [Double] { [m.trainLoss, m.trainAccuracy, m.validationLoss, m.validationAccuracy, m.learningRate] }
    #expect(rb.history.count == ra.history.count, sourceLocation: sourceLocation)
    for (x, y) in zip(ra.history, rb.history) {
        #expect(key(x) == key(y), "epoch \(x.epoch): \(key(x)) vs \(key(y))", sourceLocation: sourceLocation)
    }
    #expect(try full.model.backend.floats(full.model.flatParameters) == resumed.model.backend.floats(resumed.model.flatParameters),
            sourceLocation: sourceLocation)
}
