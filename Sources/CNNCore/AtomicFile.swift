import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes files so that a crash or a full disk never leaves a half-written file under the final
/// name: the bytes go to a temporary file in the same folder, are flushed to disk, then renamed.
package enum AtomicFile {
    package static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { emit in try data.withUnsafeBytes { try emit($0) } }
    }

    /// Streams the file's bytes: `produce` calls `emit` with consecutive pieces (no copy of the whole
    /// file is made in memory), with the same temporary-file, fsync and rename steps as above.
    package static func write(to url: URL, _ produce: (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let dir = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CNNError.io("cannot create \(tmp.path): \(String(cString: strerror(errno))) — check that the folder is writable") }
        struct WriteFailed: Error { let message: String }
        var failure: String? = nil
        do {
            try produce { raw in
                var off = 0
                while off < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                    if n <= 0 {
                        if n < 0 && errno == EINTR { continue }
                        throw WriteFailed(message: String(cString: strerror(errno)))
                    }
                    off += n
                }
            }
            if fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        } catch let e as WriteFailed {
            failure = e.message
        } catch {
            close(fd)
            unlink(tmp.path)
            throw error
        }
        close(fd)
        if let message = failure {
            unlink(tmp.path)
            throw CNNError.io("cannot write \(url.path): \(message) — the previous file (if any) is untouched")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let m = String(cString: strerror(errno))
            unlink(tmp.path)
            throw CNNError.io("cannot rename \(tmp.path) to \(url.path): \(m)")
        }
        let dfd = open(dir.path, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
