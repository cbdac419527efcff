import CNNCore
@testable import Datasets
import Foundation
import Testing

/// A fresh temporary directory, removed when the value is released.
final class TempDir {
    let path: String
    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "swiftcnn-datasets-\(safe)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func sub(_ p: String) -> String { (path as NSString).appendingPathComponent(p) }
    @discardableResult
    func mkdir(_ p: String) -> String {
        let full = sub(p)
        try! FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        return full
    }
    func write(_ p: String, _ bytes: [UInt8]) {
        precondition(FileManager.default.createFile(atPath: sub(p), contents: Data(bytes)), "cannot write \(p)")
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// One CIFAR record: label byte + 3072 pixel bytes where pixel j of the record is (seed + j) % 256.
func cifarRecord(label: UInt8, seed: Int) -> [UInt8] {
    [label] + (0..<3072).map { UInt8((seed + $0) % 256) }
}

/// The real CIFAR-10 folder shipped next to the project, or nil when absent.
func sharedCIFARDirectory() -> String? {
    let here = URL(fileURLWithPath: #filePath)  // .../Tests/DatasetsTests/TestSupport.swift
    let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [root.appendingPathComponent("../shared/data/cifar-10-batches-bin").standardized.path,
                      "/work/shared/data/cifar-10-batches-bin"]
    return candidates.first { FileManager.default.fileExists(atPath: ($0 as NSString).appendingPathComponent("data_batch_1.bin")) }
}

/// The message of the CNNError `body` throws (recording a failure when it does not throw one).
func errorMessage(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    do {
        try body()
        Issue.record("expected an error, none was thrown", sourceLocation: sourceLocation)
        return ""
    } catch let e as CNNError {
        return e.message
    } catch {
        Issue.record("expected a CNNError, got \(error)", sourceLocation: sourceLocation)
        return ""
    }
}

/// A one-image dataset (C, H, W) from bytes.
func dataset(_ pixels: [UInt8], channels: Int, height: Int, width: Int, labels: [Int32] = [0], classes: Int = 2) -> ImageDataset {
    try! ImageDataset(pixels: pixels, labels: labels, classNames: (0..<classes).map { "c\($0)" },
                      channels: channels, height: height, width: width, source: "test")
}

/// Pixel values as the unit normalisation (mean 0, std 1) outputs them: v / 255.
func unit(_ v: [Int]) -> [Float] { v.map { Float($0) / 255 } }

/// The official archive layout with one test record (label 7), as `dir/cifar-10-binary.tar.gz`,
/// and its MD5: what the locator downloads from a file:// URL in the tests.
func tinyCIFARArchive(in dir: TempDir) throws -> (path: String, md5: String) {
    _ = dir.mkdir("src/cifar-10-batches-bin")
    dir.write("src/cifar-10-batches-bin/test_batch.bin", cifarRecord(label: 7, seed: 3))
    let archive = dir.sub("cifar-10-binary.tar.gz")
    let tar = Process()
    tar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    tar.arguments = ["tar", "-czf", archive, "-C", dir.sub("src"), "cifar-10-batches-bin"]
    try tar.run()
    tar.waitUntilExit()
    try require(tar.terminationStatus == 0, "tar -czf \(archive) failed")
    return (archive, try MD5.hash(fileAt: archive).hex)
}
