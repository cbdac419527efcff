import CNNCore
import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Finds (or fetches) the CIFAR-10 folder the way `cnn --data` does.
package struct CIFAR10Locator: Sendable {
    /// `--data`, if given: a `cifar-10-batches-bin` folder or a folder that contains one.
    package var explicitPath: String?
    /// Relative paths are resolved against this directory (default: the process's).
    package var workingDirectory: String
    /// Download when nothing is found locally.
    package var allowDownload: Bool
    package var url: String
    package var md5: String
    /// Progress bar and messages (stderr by default; nil is silent).
    package var log: (@Sendable (String) -> Void)?
    /// Seconds without progress before the download gives up.
    package var timeout: Double

    package init(explicitPath: String? = nil,
                workingDirectory: String = FileManager.default.currentDirectoryPath,
                allowDownload: Bool = true,
                url: String = CIFAR10.downloadURL, md5: String = CIFAR10.archiveMD5,
                timeout: Double = 30,
                log: (@Sendable (String) -> Void)? = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.explicitPath = explicitPath
        self.workingDirectory = workingDirectory
        self.allowDownload = allowDownload
        self.url = url
        self.md5 = md5
        self.timeout = timeout
        self.log = log
    }

    private func absolute(_ p: String) -> String {
        let expanded = (p as NSString).expandingTildeInPath
        return expanded.hasPrefix("/") ? expanded : (workingDirectory as NSString).appendingPathComponent(expanded)
    }

    /// The CIFAR-10 folder to read:
    /// 1. `explicitPath` (or `explicitPath/cifar-10-batches-bin`) when it holds batch files;
    /// 2. else, without an explicit path, `./data/cifar-10-batches-bin`, then `../shared/data/cifar-10-batches-bin`;
    /// 3. else, without an explicit path, download and extract the official archive into `./data`,
    ///    verifying its MD5. A folder the user named is the user's: nothing is downloaded or
    ///    written into it; an explicit path without batch files is an error saying what it holds;
    /// 4. else (offline, or download not allowed) an error saying where to put the files.
    package func resolve() throws -> String {
        var looked: [String] = []
        let extractRoot: String
        if let explicitPath {
            let p = absolute(explicitPath)
            for candidate in [p, (p as NSString).appendingPathComponent(CIFAR10.folderName)] {
                if CIFAR10.looksLikeDataDirectory(candidate) { return candidate }
                looked.append(candidate)
            }
            throw CNNError.io("no CIFAR-10 batch files in \(looked.joined(separator: " or ")). " + Self.whatIsThere(p)
                + "A folder given with --data is yours: nothing is downloaded into it. "
                + "Put the batch files there, or leave out --data to use (or download into) ./data/\(CIFAR10.folderName). "
                + CIFAR10.whereToPutFiles)
        } else {
            let local = absolute("data/\(CIFAR10.folderName)")
            let shared = absolute("../shared/data/\(CIFAR10.folderName)")
            for candidate in [local, shared] {
                if CIFAR10.looksLikeDataDirectory(candidate) { return candidate }
                looked.append(candidate)
            }
            extractRoot = absolute("data")
        }
        let target = (extractRoot as NSString).appendingPathComponent(CIFAR10.folderName)
        guard allowDownload else {
            throw CNNError.io("CIFAR-10 not found (looked in \(looked.joined(separator: ", "))) and downloading is off. " + CIFAR10.whereToPutFiles)
        }
        do {
            try download(into: extractRoot)
        } catch let e as CNNError {
            throw CNNError.io("CIFAR-10 not found (looked in \(looked.joined(separator: ", "))) and the download failed: \(sentence(e.message)) "
                + "If this machine is offline: " + CIFAR10.whereToPutFiles)
        }
        guard CIFAR10.looksLikeDataDirectory(target) else {
            throw CNNError.invalidData("the archive from \(url) extracted into \(extractRoot) but \(target) holds no batch files; "
                + "is it the binary version (cifar-10-binary.tar.gz)?")
        }
        return target
    }

    /// What `path` holds, as a sentence, when it is not a CIFAR-10 folder (empty when nothing useful can be said).
    static func whatIsThere(_ path: String) -> String {
        do {
            if case .imageFolder = try DataDetection.detect(path) {
                return "\(path) holds class folders of images: train on it with --format folder (or without --format, which detects it). "
            }
            return ""
        } catch let e as CNNError {
            // The detector's account of the folder, without its own "Expected ..." sentence.
            let m = e.message
            return (m.range(of: ". Expected").map { String(m[..<$0.lowerBound]) } ?? m) + ". "
        } catch { return "" }
    }

    /// Downloads `url` to `directory/<archive name>` (unless a copy with the right MD5 is already
    /// there), verifies the MD5 and extracts it with `tar` into `directory`.
    package func download(into directory: String) throws {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CNNError.io("cannot create \(directory) for the CIFAR-10 download: \(error.localizedDescription)")
        }
        let name = URL(string: url)?.lastPathComponent ?? CIFAR10.archiveName
        let archive = (directory as NSString).appendingPathComponent(name.isEmpty ? CIFAR10.archiveName : name)
        if fm.fileExists(atPath: archive), (try? MD5.hash(fileAt: archive).hex) == md5.lowercased() {
            log?("using the already downloaded \(archive) (MD5 verified)\n")
        } else {
            log?("downloading \(url) to \(archive)\n")
            try fetch(to: archive)
            let sum = try MD5.hash(fileAt: archive).hex
            guard sum == md5.lowercased() else {
                try? fm.removeItem(atPath: archive)
                throw CNNError.invalidData("downloaded \(url) has MD5 \(sum), expected \(md5) (the download is corrupt or was altered); "
                    + "it was deleted — retry, or fetch the file by hand.")
            }
            log?("MD5 \(sum) verified\n")
        }
        try Self.extract(archive: archive, into: directory)
        log?("extracted \(archive) into \(directory)\n")
    }

    /// Runs `tar -xzf archive -C directory`.
    package static func extract(archive: String, into directory: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["tar", "-xzf", archive, "-C", directory]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch {
            throw CNNError.io("cannot run tar to extract \(archive): \(error.localizedDescription). Install tar, or extract the archive by hand into \(directory).")
        }
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw CNNError.io("tar -xzf \(archive) -C \(directory) failed (exit \(p.terminationStatus)): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    private func fetch(to path: String) throws {
        guard let source = URL(string: url) else { throw CNNError.invalidArgument("'\(url)' is not a URL") }
        let partial = path + ".part"
        if source.isFileURL {
            // A local mirror (file:// URL): copy it.
            do {
                try? FileManager.default.removeItem(atPath: path)
                try FileManager.default.copyItem(atPath: source.path, toPath: path)
            } catch {
                throw CNNError.io("copying \(source.path) failed: \(error.localizedDescription)")
            }
            return
        }
        let delegate = DownloadDelegate(destination: URL(fileURLWithPath: partial), log: log)
        let config = URLSessionConfiguration.default
        config.timeoutIntervalForRequest = timeout
        let session = URLSession(configuration: config, delegate: delegate, delegateQueue: nil)
        session.downloadTask(with: source).resume()
        delegate.done.wait()
        session.finishTasksAndInvalidate()
        if let failure = delegate.failure {
            try? FileManager.default.removeItem(atPath: partial)
            throw CNNError.io("downloading \(url) failed: \(failure)")
        }
        do {
            try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: partial, toPath: path)
        } catch {
            throw CNNError.io("cannot move the download to \(path): \(error.localizedDescription)")
        }
    }
}

/// Receives URLSession callbacks on its own queue; `done` is signalled once, at the end.
private final class DownloadDelegate: NSObject, URLSessionDownloadDelegate, @unchecked Sendable {
    let destination: URL
    let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var _failure: String?
    private var bar: ProgressBar
    private let log: (@Sendable (String) -> Void)?

    init(destination: URL, log: (@Sendable (String) -> Void)?) {
        self.destination = destination
        self.log = log
        self.bar = ProgressBar(label: "CIFAR-10")
    }

    var failure: String? { lock.lock(); defer { lock.unlock() }; return _failure }
    private func fail(_ m: String) { lock.lock(); if _failure == nil { _failure = m }; lock.unlock() }

    func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask,
                    didWriteData bytesWritten: Int64, totalBytesWritten: Int64, totalBytesExpectedToWrite: Int64) {
        if let line = bar.update(done: totalBytesWritten, total: totalBytesExpectedToWrite) { log?(line) }
    }

    func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask, didFinishDownloadingTo location: URL) {
        if let http = downloadTask.response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
            fail("HTTP status \(http.statusCode) (\(HTTPURLResponse.localizedString(forStatusCode: http.statusCode)))")
            return
        }
        do {
            try? FileManager.default.removeItem(at: destination)
            try FileManager.default.moveItem(at: location, to: destination)
        } catch {
            fail("cannot save the download to \(destination.path): \(error.localizedDescription)")
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error { fail(error.localizedDescription) }
        if let line = bar.finish() { log?(line) }
        done.signal()
    }
}

/// A one-line byte progress bar: `\r<label> [#######.............]  35%  57.1/162.6 MB  8.3 MB/s`.
/// Redraws at most 10 times a second.
struct ProgressBar {
    let label: String
    let start = DispatchTime.now().uptimeNanoseconds
    var lastDraw: UInt64 = 0
    var lastDone: Int64 = 0
    var lastTotal: Int64 = 0

    init(label: String) { self.label = label }

    mutating func update(done: Int64, total: Int64) -> String? {
        lastDone = done
        lastTotal = total
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - lastDraw >= 100_000_000 else { return nil }
        lastDraw = now
        return render(now: now)
    }

    mutating func finish() -> String? { render(now: DispatchTime.now().uptimeNanoseconds) + "\n" }

    func render(now: UInt64) -> String {
        let seconds = max(Double(now - start) / 1e9, 1e-3)
        let mb = Double(lastDone) / 1e6
        let rate = formatFixed(mb / seconds, 1) + " MB/s"
        guard lastTotal > 0 else { return "\r\(label) \(formatFixed(mb, 1)) MB  \(rate)" }
        let f = min(1, Double(lastDone) / Double(lastTotal))
        let width = 30
        let filled = Int(f * Double(width))
        return "\r\(label) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + formatFixed(100 * f, 0) + "%  " + formatFixed(mb, 1) + "/" + formatFixed(Double(lastTotal) / 1e6, 1) + " MB  " + rate
    }
}

/// `s` ending with a full stop.
func sentence(_ s: String) -> String {
    let t = s.trimmingCharacters(in: .whitespaces)
    return t.hasSuffix(".") ? t : t + "."
}
