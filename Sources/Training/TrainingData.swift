import CNNCore
import Datasets
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The images a run trains, validates and tests on.
public struct TrainingData: Sendable {
    /// The training set; `split` divides it into training and validation indices.
    public let train: ImageDataset
    public let split: DatasetSplit
    public let test: ImageDataset?

    public var classNames: [String] { train.classNames }
    public var imageShape: Shape { train.imageShape }

    public init(train: ImageDataset, split: DatasetSplit, test: ImageDataset?) {
        self.train = train
        self.split = split
        self.test = test
    }

    /// Loads the data a config names: CIFAR-10 (found or downloaded as `CIFAR10Locator` does) or image folders.
    public static func load(_ c: TrainConfig, log: @escaping @Sendable (String) -> Void) throws -> TrainingData {
        let train: ImageDataset
        var test: ImageDataset?
        var format = c.dataFormat
        var detectedCIFAR: String?
        var folderRoot = c.data, folderTest = c.testData
        if format == .auto {
            if let d = c.data {
                switch try DataDetection.detect(absolutePath(d)) {
                case .cifar10(let dir):
                    format = .cifar10
                    detectedCIFAR = dir
                    log("data: \(d) holds CIFAR-10 batch files (format cifar10)")
                case .imageFolder(let root, let test):
                    format = .folder
                    if root != absolutePath(d) {
                        // DIR/train (+ DIR/test or DIR/val).
                        folderRoot = root
                        if folderTest == nil { folderTest = test }
                        log("data: \(d) holds train" + (test.map { " and \(($0 as NSString).lastPathComponent)" } ?? "") + " folders of class folders (format folder)")
                    } else {
                        log("data: \(d) holds class folders of images (format folder)")
                    }
                }
            } else {
                format = .cifar10
            }
        }
        switch format {
        case .auto:
            preconditionFailure("the data format was resolved above")
        case .cifar10:
            let dir = try detectedCIFAR ?? CIFAR10Locator(explicitPath: c.data).resolve()
            train = try CIFAR10.load(.train, directory: dir, limit: c.limit)
            if c.evaluateTest { test = try CIFAR10.load(.test, directory: dir, limit: c.testLimit) }
            log("data: CIFAR-10 from \(dir): \(train.count) training images" + (test.map { ", \($0.count) test images" } ?? ""))
        case .folder:
            guard let root = folderRoot else {
                throw CNNError.invalidArgument("dataFormat folder needs data: the root folder, with one sub-folder of images per class")
            }
            let options = ImageFolderOptions(channels: c.imageChannels, height: c.imageSize, width: c.imageSize)
            var all = try ImageFolder.load(root: root, options: options, log: log)
            if let limit = c.limit, limit < all.count { all = try all.subset(Array(0..<limit)) }
            train = all
            guard train.numClasses >= 2 else {
                throw CNNError.invalidData("image folder \(root) has one class folder ('\(train.classNames.joined())'); a classifier needs at least two. "
                    + "Add one sub-folder of images per class, e.g. \(root)/<other class>/<image>.png.")
            }
            if let t = folderTest, c.evaluateTest {
                let ts = try ImageFolder.load(root: t, options: options, log: log)
                try require(ts.classNames == train.classNames,
                            "test folder \(t) has classes \(ts.classNames) but training folder \(root) has \(train.classNames)")
                test = ts
            }
            log("data: image folders \(root): \(train.count) images, \(train.numClasses) classes, resized to \(c.imageChannels)x\(c.imageSize)x\(c.imageSize)")
        }
        let split = try train.split(validationFraction: c.validationFraction, seed: c.seed, stratified: c.stratify)
        releaseFreedMemory()
        return TrainingData(train: train, split: split, test: test)
    }
}

/// `p` with `~` expanded and, when relative, against the working directory.
func absolutePath(_ p: String) -> String {
    let expanded = (p as NSString).expandingTildeInPath
    return expanded.hasPrefix("/") ? expanded : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(expanded)
}

/// Hands memory freed while loading (file reads, decoded images) back to the OS. glibc keeps freed
/// heap memory by default — after loading CIFAR-10 that was ~250 MB of resident but unused heap for
/// the rest of the run.
func releaseFreedMemory() {
    #if canImport(Glibc)
    _ = glibcMallocTrim(0)
    #endif
}

#if canImport(Glibc)
/// glibc's `int malloc_trim(size_t pad)` (declared in <malloc.h>, which the Glibc module does not export).
@_silgen_name("malloc_trim") private func glibcMallocTrim(_ pad: Int) -> Int32
#endif
