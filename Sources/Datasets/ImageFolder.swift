import CNNCore
import Dispatch
import Foundation

/// How to turn a folder of images into an `ImageDataset`.
public struct ImageFolderOptions: Sendable, Equatable {
    /// 1 (grayscale) or 3 (RGB); images are converted as needed.
    public var channels: Int
    /// The model's input size; images are resized to it (bilinear) unless `resize` is false.
    public var height: Int
    public var width: Int
    /// When false, an image of another size is an error instead of being resized.
    public var resize: Bool
    /// File extensions (lower case) that are images; other files are skipped and counted.
    public var extensions: Set<String>
    /// Images larger than this are refused (a corrupt header could otherwise ask for gigabytes).
    public var maxPixels: Int
    /// 100 megapixels.
    public static let defaultMaxPixels = 100_000_000

    public init(channels: Int = 3, height: Int = 32, width: Int = 32, resize: Bool = true,
                extensions: Set<String> = ["png", "jpg", "jpeg"], maxPixels: Int = ImageFolderOptions.defaultMaxPixels) {
        self.channels = channels
        self.height = height
        self.width = width
        self.resize = resize
        self.extensions = extensions
        self.maxPixels = maxPixels
    }
}

/// `root/<class>/<image>.png|jpg|jpeg`: one sub-folder per class, classes in sorted folder-name
/// order (label k = k-th name), images in sorted file-name order within a class.
public enum ImageFolder {
    /// The class folders and their image files, without decoding anything.
    public static func scan(root: String, options: ImageFolderOptions = ImageFolderOptions())
        throws -> (classNames: [String], files: [(path: String, label: Int32)], skipped: [String]) {
        let s = try survey(root: root, options: options)
        return (s.classNames, s.files, s.skips.nonImages)
    }

    /// What a scan left out; `load` prints it as one warning.
    public struct Skips: Sendable, Equatable {
        /// Files in class folders without an image extension (e.g. notes.txt).
        public var nonImages: [String] = []
        /// Names starting with "." (e.g. .DS_Store), in the root or in class folders.
        public var hidden: [String] = []
        /// Folders inside class folders (only one level is read; they are not searched).
        public var folders: [String] = []
        /// Files directly in the root (not in a class folder).
        public var rootFiles: [String] = []
        /// Named pipes, sockets and devices in class folders (reading a pipe could block forever).
        public var special: [String] = []
        public var total: Int { nonImages.count + hidden.count + folders.count + rootFiles.count + special.count }

        /// One line for the log, or nil when nothing was skipped.
        public func warning(root: String, extensions: Set<String>) -> String? {
            var parts: [String] = []
            if !nonImages.isEmpty {
                parts.append("\(nonImages.count) file\(nonImages.count == 1 ? "" : "s") without an image extension ("
                    + extensions.sorted().joined(separator: "/") + "), e.g. \(nonImages[0])")
            }
            if !hidden.isEmpty { parts.append("\(hidden.count) hidden file\(hidden.count == 1 ? "" : "s"), e.g. \(hidden[0])") }
            if !folders.isEmpty {
                parts.append("\(folders.count) folder\(folders.count == 1 ? "" : "s") inside class folders (not searched), e.g. \(folders[0])")
            }
            if !special.isEmpty {
                parts.append("\(special.count) pipe\(special.count == 1 ? "" : "s")/socket\(special.count == 1 ? "" : "s")/device\(special.count == 1 ? "" : "s") (not regular files), e.g. \(special[0])")
            }
            if !rootFiles.isEmpty {
                parts.append("\(rootFiles.count) file\(rootFiles.count == 1 ? "" : "s") outside the class folders, e.g. \(rootFiles[0])")
            }
            return parts.isEmpty ? nil : "warning: image folder \(root): skipped " + parts.joined(separator: "; ")
        }
    }

    /// `scan` with everything it left out.
    package static func survey(root: String, options: ImageFolderOptions = ImageFolderOptions())
        throws -> (classNames: [String], files: [(path: String, label: Int32)], skips: Skips) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw CNNError.io("image folder \(root) does not exist or is not a directory. "
                + "Expected root/<class name>/<image>.png|jpg, one sub-folder per class.")
        }
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: root) } catch {
            throw CNNError.io("cannot list image folder \(root): \(error.localizedDescription)")
        }
        var skips = Skips()
        var classNames: [String] = []
        for name in entries.sorted() {
            let path = (root as NSString).appendingPathComponent(name)
            if name.hasPrefix(".") { skips.hidden.append(path); continue }
            try refuseBrokenLink(path)
            var d: ObjCBool = false
            if fm.fileExists(atPath: path, isDirectory: &d), d.boolValue { classNames.append(name) } else { skips.rootFiles.append(path) }
        }
        guard !classNames.isEmpty else {
            throw CNNError.invalidData("image folder \(root) has no class folders. Expected root/<class name>/<image>.png|jpg, "
                + "one sub-folder per class (e.g. \(root)/cat/001.png, \(root)/dog/001.jpg).")
        }
        var files: [(String, Int32)] = []
        for (k, name) in classNames.enumerated() {
            let dir = (root as NSString).appendingPathComponent(name)
            let names: [String]
            do { names = try fm.contentsOfDirectory(atPath: dir) } catch {
                throw CNNError.io("cannot list class folder \(dir): \(error.localizedDescription)")
            }
            var count = 0
            for file in names.sorted() {
                let path = (dir as NSString).appendingPathComponent(file)
                if file.hasPrefix(".") { skips.hidden.append(path); continue }
                try refuseBrokenLink(path)
                var d: ObjCBool = false
                if fm.fileExists(atPath: path, isDirectory: &d), d.boolValue {
                    skips.folders.append(path)
                } else if !isRegularFile(path) {
                    skips.special.append(path)
                } else if options.extensions.contains((file as NSString).pathExtension.lowercased()) {
                    files.append((path, Int32(k)))
                    count += 1
                } else {
                    skips.nonImages.append(path)
                }
            }
            guard count > 0 else {
                throw CNNError.invalidData("class folder \(dir) (class '\(name)') has no images with extension "
                    + options.extensions.sorted().joined(separator: "/") + ". Add images to it or remove the folder.")
            }
        }
        return (classNames, files, skips)
    }

    /// True for a regular file (after following links); false for pipes, sockets and devices.
    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Throws, naming `path`, when it is a symbolic link that loops or points nowhere (such a link
    /// would otherwise be skipped silently, or fail later as an unreadable image).
    static func refuseBrokenLink(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK else { return }
        guard stat(path, &st) != 0 else { return }
        let why = errno == ELOOP ? "is a symbolic link loop" : "is a symbolic link to \"\((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?")\", which does not exist"
        throw CNNError.invalidData("\(path) \(why). Fix or delete the link.")
    }

    /// Decodes every image (in parallel over `threads` threads; default: all cores), converts it
    /// to `options.channels`, resizes it to `options.height` x `options.width` and returns them as
    /// one dataset. The first bad file (in scan order) is reported, by path, whatever the thread count.
    /// Skipped files (see `Skips`) are reported through `log` as one warning line.
    public static func load(root: String, options: ImageFolderOptions = ImageFolderOptions(),
                            threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                            log: (@Sendable (String) -> Void)? = nil) throws -> ImageDataset {
        try require(options.channels == 1 || options.channels == 3,
                    "image folder channels must be 1 (grayscale) or 3 (RGB), got \(options.channels)")
        try require(options.height > 0 && options.width > 0,
                    "image folder target size must be positive, got \(options.height)x\(options.width)")
        let scanned = try survey(root: root, options: options)
        if let w = scanned.skips.warning(root: root, extensions: options.extensions) { log?(w) }
        let files = scanned.files
        let per = options.channels * options.height * options.width
        var pixels = [UInt8](repeating: 0, count: files.count * per)
        let errors = ErrorSlots(count: files.count)
        let workers = max(1, min(threads, files.count))
        let next = AtomicCounter()
        pixels.withUnsafeMutableBufferPointer { buffer in
            let shared = SendableBuffer(buffer)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while true {
                    let i = next.next()
                    if i >= files.count || errors.firstIndex.map({ $0 < i }) == true { return }
                    do {
                        let img = try decodeForModel(path: files[i].path, options: options)
                        img.writePlanes(into: shared.buffer.baseAddress! + i * per)   // slot i, (C, H, W)
                    } catch {
                        errors.set(i, error)
                    }
                }
            }
        }
        if let (_, error) = errors.first { throw error }
        var notes = ""
        let k = scanned.skips
        let counts = [(k.nonImages.count, "non-image files"), (k.hidden.count, "hidden"), (k.folders.count, "sub-folders"), (k.rootFiles.count, "outside class folders"), (k.special.count, "not regular files")]
            .filter { $0.0 > 0 }.map { "\($0.0) \($0.1)" }
        if !counts.isEmpty { notes = " (skipped " + counts.joined(separator: ", ") + ")" }
        return try ImageDataset(pixels: pixels, labels: files.map(\.label), classNames: scanned.classNames,
                                channels: options.channels, height: options.height, width: options.width,
                                source: root + notes)
    }

    /// One image, decoded, converted and resized as `load` does: (H, W, C) interleaved.
    package static func decodeForModel(path: String, options: ImageFolderOptions) throws -> DecodedImage {
        var img = try ImageCodec.decode(fileAt: path, maxPixels: options.maxPixels)
        if img.width != options.width || img.height != options.height {
            guard options.resize else {
                throw CNNError.invalidData("image \(path) is \(img.width)x\(img.height) pixels (width x height); the model takes "
                    + "\(options.width)x\(options.height). Resize it, or allow resizing (resize: true).")
            }
        }
        img = ImageCodec.convert(img, channels: options.channels)
        return ImageCodec.resize(img, width: options.width, height: options.height)
    }
}

/// Per-index error slots; `first` is the lowest failing index, so reports do not depend on threads.
final class ErrorSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Int: Error] = [:]
    private var _first: Int?
    init(count: Int) {}
    func set(_ i: Int, _ e: Error) {
        lock.lock(); defer { lock.unlock() }
        errors[i] = e
        if _first == nil || i < _first! { _first = i }
    }
    var firstIndex: Int? { lock.lock(); defer { lock.unlock() }; return _first }
    var first: (Int, Error)? {
        lock.lock(); defer { lock.unlock() }
        return _first.map { ($0, errors[$0]!) }
    }
}

final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; let v = value; value += 1; return v }
}

/// A raw buffer whose disjoint slots are written from several threads.
struct SendableBuffer<T>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<T>
    init(_ b: UnsafeMutableBufferPointer<T>) { buffer = b }
}

extension ImageFolder {
    /// The training and test folders under `root`: `root/train` and `root/test` (or `root/val`)
    /// when `root/train` exists, else `root` itself with no test folder.
    public static func trainTestFolders(root: String) -> (train: String, test: String?) {
        let fm = FileManager.default
        func isDir(_ p: String) -> Bool { var d: ObjCBool = false; return fm.fileExists(atPath: p, isDirectory: &d) && d.boolValue }
        let train = (root as NSString).appendingPathComponent("train")
        guard isDir(train) else { return (root, nil) }
        for name in ["test", "val"] {
            let t = (root as NSString).appendingPathComponent(name)
            if isDir(t) { return (train, t) }
        }
        return (train, nil)
    }

    /// Loads `trainTestFolders(root:)`. The test folder must have the same class folders as the
    /// training folder (labels are positions in the sorted class list, so they must agree).
    public static func loadTrainTest(root: String, options: ImageFolderOptions = ImageFolderOptions(),
                                     threads: Int = ProcessInfo.processInfo.activeProcessorCount)
        throws -> (train: ImageDataset, test: ImageDataset?) {
        let (trainDir, testDir) = trainTestFolders(root: root)
        let train = try load(root: trainDir, options: options, threads: threads)
        guard let testDir else { return (train, nil) }
        let test = try load(root: testDir, options: options, threads: threads)
        guard test.classNames == train.classNames else {
            let missing = Set(train.classNames).symmetricDifference(test.classNames).sorted()
            throw CNNError.invalidData("class folders differ between \(trainDir) and \(testDir) (only in one of them: "
                + missing.joined(separator: ", ") + "); both need the same class folders so labels agree.")
        }
        return (train, test)
    }

    /// Decodes image files for prediction: (N, C, H, W) UInt8, converted and resized like `load`.
    public static func loadImages(paths: [String], options: ImageFolderOptions = ImageFolderOptions()) throws -> [UInt8] {
        try require(options.channels == 1 || options.channels == 3,
                    "image channels must be 1 (grayscale) or 3 (RGB), got \(options.channels)")
        let hw = options.height * options.width, c = options.channels
        var out = [UInt8](repeating: 0, count: paths.count * c * hw)
        for (i, path) in paths.enumerated() {
            let img = try decodeForModel(path: path, options: options)
            for p in 0..<hw { for ch in 0..<c { out[(i * c + ch) * hw + p] = img.pixels[p * c + ch] } }
        }
        return out
    }
}
