import CNNCore
import Foundation

/// CIFAR-10 in the official binary layout (`cifar-10-batches-bin/`).
///
/// A batch file is a sequence of 3073-byte records: 1 label byte (0...9), then 3072 pixel bytes
/// — 1024 R, 1024 G, 1024 B, each plane 32x32 row-major. That is exactly `ImageDataset`'s
/// (C, H, W) layout, so records are copied, not converted. `batches.meta.txt` names the classes,
/// one a line.
public enum CIFAR10 {
    public static let side = 32
    public static let imageBytes = 3 * 32 * 32
    public static let recordSize = 1 + imageBytes
    /// Records in one official batch file; a larger file is refused (it is not one batch).
    public static let recordsPerFile = 10_000
    public static let trainingFiles = (1...5).map { "data_batch_\($0).bin" }
    public static let testFile = "test_batch.bin"
    public static let metaFile = "batches.meta.txt"
    /// The official class names, used when `batches.meta.txt` is absent.
    public static let defaultClassNames = ["airplane", "automobile", "bird", "cat", "deer",
                                           "dog", "frog", "horse", "ship", "truck"]
    public static let folderName = "cifar-10-batches-bin"
    public static let downloadURL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    public static let archiveName = "cifar-10-binary.tar.gz"
    public static let archiveMD5 = "c32a1d4ab5d03f1284b67883e8d87530"

    public enum Part: String, Sendable, CaseIterable {
        case train  // data_batch_1..5: 50,000 images
        case test   // test_batch: 10,000 images
        public var files: [String] { self == .train ? CIFAR10.trainingFiles : [CIFAR10.testFile] }
    }

    /// Reads `part` from `directory` (a `cifar-10-batches-bin` folder); at most `limit` images,
    /// taken from the first files in order (data_batch_1 first).
    public static func load(_ part: Part, directory: String, limit: Int? = nil) throws -> ImageDataset {
        if let limit { try require(limit > 0, "CIFAR-10 limit must be positive, got \(limit)") }
        let names = try readClassNames(directory: directory)
        // One buffer of the final size, filled file by file in small chunks: loading peaks at the
        // dataset's size (150 MB for the training set), not at a multiple of it.
        let expected = min(limit ?? Int.max, part.files.count * recordsPerFile)
        var pixels: [UInt8] = []
        var labels: [Int32] = []
        pixels.reserveCapacity(expected * imageBytes)
        labels.reserveCapacity(expected)
        for file in part.files {
            let remaining = limit.map { $0 - labels.count } ?? Int.max
            if remaining <= 0 { break }
            let path = (directory as NSString).appendingPathComponent(file)
            try appendBatch(path: path, limit: remaining == Int.max ? nil : remaining, pixels: &pixels, labels: &labels)
        }
        return try ImageDataset(pixels: pixels, labels: labels, classNames: names,
                                channels: 3, height: side, width: side, source: directory)
    }

    /// Reads one batch file: pixels (N, 3, 32, 32) and labels (N), at most `limit` records.
    ///
    /// Throws when the file is missing (saying where the files go), empty, not a whole number of
    /// records (naming the byte offset where the incomplete record starts) or larger than
    /// 10,000 records, and when a label byte is above 9 (naming the record and its byte offset).
    public static func readBatch(path: String, limit: Int? = nil) throws -> (pixels: [UInt8], labels: [Int32]) {
        var pixels: [UInt8] = [], labels: [Int32] = []
        try appendBatch(path: path, limit: limit, pixels: &pixels, labels: &labels)
        return (pixels, labels)
    }

    /// `readBatch`, appending to `pixels` and `labels`; the file is read in chunks of 1,000 records.
    static func appendBatch(path: String, limit: Int?, pixels: inout [UInt8], labels: inout [Int32]) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
            throw CNNError.io("CIFAR-10 batch file \(path) does not exist. " + whereToPutFiles)
        }
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            // A named pipe would block the open for ever; a device is not a batch either.
            throw CNNError.io("CIFAR-10 batch file \(path) is not a regular file (a pipe, socket or device). " + whereToPutFiles)
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CNNError.io("cannot open CIFAR-10 batch file \(path) for reading: check its permissions")
        }
        defer { try? handle.close() }
        let size = Int(try handle.seekToEnd())
        try handle.seek(toOffset: 0)
        if size == 0 {
            throw CNNError.invalidData("CIFAR-10 batch file \(path) is empty (0 bytes); expected records of \(recordSize) bytes. Re-download or re-extract it.")
        }
        let whole = size / recordSize
        if size % recordSize != 0 {
            throw CNNError.invalidData("CIFAR-10 batch file \(path) is truncated: record \(whole) starts at byte offset \(whole * recordSize) "
                + "but only \(size % recordSize) of its \(recordSize) bytes are there (file size \(size) is not a multiple of \(recordSize)). "
                + "Re-download or re-extract the file.")
        }
        if whole > recordsPerFile {
            throw CNNError.invalidData("CIFAR-10 batch file \(path) is too large: \(size) bytes, \(whole) records of \(recordSize) bytes, "
                + "but a batch holds at most \(recordsPerFile) (\(recordsPerFile * recordSize) bytes); record \(recordsPerFile) starts at byte offset "
                + "\(recordsPerFile * recordSize). It is not a CIFAR-10 batch (several batches joined, or another dataset): re-download or re-extract it.")
        }
        let n = min(whole, limit ?? whole)
        let firstPixel = pixels.count, firstLabel = labels.count
        var r0 = 0
        while r0 < n {
            let count = min(1_000, n - r0)
            let data = try handle.read(upToCount: count * recordSize) ?? Data()
            guard data.count == count * recordSize else {
                throw CNNError.io("CIFAR-10 batch file \(path): read \(r0 * recordSize + data.count) of \(n * recordSize) bytes (file changed while reading?)")
            }
            var badLabel: (record: Int, value: UInt8)? = nil
            data.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
                for r in 0..<count {
                    let label = src[r * recordSize]
                    if label > 9 { badLabel = (r0 + r, label); return }
                    labels.append(Int32(label))
                    pixels.append(contentsOf: UnsafeRawBufferPointer(rebasing: src[(r * recordSize + 1)..<((r + 1) * recordSize)]))
                }
            }
            if let (r, value) = badLabel {
                // Leave the arrays as they were: a failed file adds nothing.
                pixels.removeSubrange(firstPixel...)
                labels.removeSubrange(firstLabel...)
                throw CNNError.invalidData("CIFAR-10 batch file \(path): record \(r) (byte offset \(r * recordSize)) has label \(value); "
                    + "labels must be 0...9. The file is corrupt or not a CIFAR-10 batch (CIFAR-100 files have 2 label bytes): re-download it.")
            }
            r0 += count
        }
    }

    /// Class names from `directory/batches.meta.txt` (one a line, blank lines ignored), or the
    /// official names when that file is absent.
    public static func readClassNames(directory: String) throws -> [String] {
        let path = (directory as NSString).appendingPathComponent(metaFile)
        guard FileManager.default.fileExists(atPath: path) else { return defaultClassNames }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw CNNError.io("cannot read \(path) as UTF-8 text (it should list the 10 class names, one a line)")
        }
        let names = text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard names.count == 10 else {
            throw CNNError.invalidData("\(path) lists \(names.count) class names; CIFAR-10 has 10, one a line. Fix or delete the file (the official names are used when it is absent).")
        }
        return names
    }

    /// True when `directory` holds at least one CIFAR-10 batch file.
    public static func looksLikeDataDirectory(_ directory: String) -> Bool {
        let fm = FileManager.default
        return ([testFile] + trainingFiles).contains { fm.fileExists(atPath: (directory as NSString).appendingPathComponent($0)) }
    }

    static let whereToPutFiles = "Put the CIFAR-10 binary files (data_batch_1.bin ... data_batch_5.bin, test_batch.bin, batches.meta.txt) "
        + "in ./data/\(folderName)/ or pass their folder with --data DIR. On a connected machine: download \(downloadURL) "
        + "(MD5 \(archiveMD5)) and run `tar -xzf \(archiveName) -C data`."
}
