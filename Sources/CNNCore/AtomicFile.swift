import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes files so that a crash or a full disk never leaves a half-written file under the final
/// name: the bytes go to a temporary file in the same folder, are flushed to disk, then renamed.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CNNError.io("cannot create \(tmp.path): \(String(cString: strerror(errno))) — check that the folder is writable") }
        var ok = true
        var message = ""
        data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    ok = false; message = String(cString: strerror(errno)); break
                }
                off += n
            }
        }
        if ok && fsync(fd) != 0 { ok = false; message = String(cString: strerror(errno)) }
        close(fd)
        guard ok else {
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
