import CNNCore
import Foundation

/// What a data folder holds, as `cnn train --data DIR` sees it without `--format`.
public enum DetectedData: Sendable, Equatable {
    /// CIFAR-10 binary batch files, in `directory` (the folder itself, or its `cifar-10-batches-bin`).
    case cifar10(directory: String)
    /// `root/<class>/<image>`: one sub-folder of images per class; `test` is the test folder of
    /// a `DIR/train` + `DIR/test` (or `DIR/val`) layout.
    case imageFolder(root: String, test: String? = nil)
}

/// Tells a CIFAR-10 folder from an image-folder dataset by looking at the names in it (nothing is
/// decoded, nothing is written). Used when the user gives a folder but no format.
public enum DataDetection {
    /// - CIFAR-10 batch files in `path` or in `path/cifar-10-batches-bin` → `.cifar10`;
    /// - else at least one non-hidden sub-folder holding a file with an image extension → `.imageFolder`;
    /// - else `path/train` such a folder → `.imageFolder(root: path/train, test: path/test or path/val)`
    ///   (as `ImageFolder.trainTestFolders`);
    /// - else an error saying what the folder holds and what is expected.
    public static func detect(_ path: String, extensions: Set<String> = ImageFolderOptions().extensions) throws -> DetectedData {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CNNError.io("data folder \(path) does not exist. " + expected(path))
        }
        guard isDir.boolValue else {
            let hint = CIFAR10.trainingFiles.contains((path as NSString).lastPathComponent) || (path as NSString).lastPathComponent == CIFAR10.testFile
                ? " For CIFAR-10 pass the folder that holds the batch files: --data \((path as NSString).deletingLastPathComponent)." : ""
            throw CNNError.invalidArgument("--data \(path) is a file; it takes a folder.\(hint) " + expected(path))
        }
        for candidate in [path, (path as NSString).appendingPathComponent(CIFAR10.folderName)] where CIFAR10.looksLikeDataDirectory(candidate) {
            return .cifar10(directory: candidate)
        }
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: path).sorted() } catch {
            throw CNNError.io("cannot list data folder \(path): \(error.localizedDescription)")
        }
        let visible = entries.filter { !$0.hasPrefix(".") }
        func isDirectory(_ p: String) -> Bool { var d: ObjCBool = false; return fm.fileExists(atPath: p, isDirectory: &d) && d.boolValue }
        func isImageName(_ name: String) -> Bool { extensions.contains((name as NSString).pathExtension.lowercased()) }
        let folders = visible.filter { isDirectory((path as NSString).appendingPathComponent($0)) }
        let files = visible.filter { !folders.contains($0) }
        let classFolders = folders.filter { name in
            let dir = (path as NSString).appendingPathComponent(name)
            return ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).contains { !$0.hasPrefix(".") && isImageName($0) }
        }
        if !classFolders.isEmpty { return .imageFolder(root: path) }
        // The train/test layout: path/train/<class>/..., path/test (or path/val)/<class>/...
        if folders.contains("train") {
            let (train, test) = ImageFolder.trainTestFolders(root: path)
            if case .imageFolder(_, nil)? = try? detect(train, extensions: extensions) {
                return .imageFolder(root: train, test: test)
            }
        }

        // Nothing usable: say what is there.
        var found: String
        if visible.isEmpty {
            found = entries.isEmpty ? "\(path) is empty" : "\(path) holds only hidden files (\(sample(entries)))"
        } else {
            let images = files.filter(isImageName)
            var parts: [String] = []
            if !files.isEmpty { parts.append("\(files.count) file\(files.count == 1 ? "" : "s") (\(sample(files)))") }
            if !folders.isEmpty { parts.append("\(folders.count) folder\(folders.count == 1 ? "" : "s") without images (\(sample(folders)))") }
            found = "\(path) holds " + parts.joined(separator: " and ") + " but no CIFAR-10 batch files and no class folders of images"
            if !images.isEmpty {
                found += "; its \(images.count) image\(images.count == 1 ? "" : "s") lie directly in it: put each class's images in their own sub-folder, \(path)/<class>/<image>"
            }
        }
        throw CNNError.invalidData(found + ". " + expected(path))
    }

    static func expected(_ path: String) -> String {
        "Expected either one sub-folder of images per class (\(path)/<class>/<image>.png|jpg) "
            + "or the CIFAR-10 binary batch files (data_batch_1.bin ... data_batch_5.bin, test_batch.bin), "
            + "in the folder or in a \(CIFAR10.folderName) folder inside it."
    }

    static func sample(_ names: [String]) -> String {
        let shown = names.prefix(3).joined(separator: ", ")
        return names.count > 3 ? shown + ", ..." : shown
    }
}
