import CNNCore
import COpenCL
import Foundation

/// Counters of the on-disk program cache, process-wide.
package struct ProgramCacheStats: Sendable, Equatable, CustomStringConvertible {
    /// Programs loaded from a cached binary (no compilation from source).
    package var hits = 0
    /// Programs compiled from source (cache miss, or caching disabled).
    package var compilations = 0
    /// Cache entries found but not trusted (corrupt, truncated, key mismatch, or the driver refused
    /// the binary); each was rebuilt from source and overwritten.
    package var rejected = 0
    /// Entries written, and writes that failed (the program still works; the next process recompiles).
    package var writes = 0
    package var writeFailures = 0
    /// Wall seconds spent compiling from source (including fetching and storing the binary) and
    /// loading cached binaries.
    package var compileSeconds = 0.0
    package var loadSeconds = 0.0

    package var description: String {
        "program cache: \(hits) hits, \(compilations) compilations (\(String(format1: compileSeconds * 1000)) ms), "
            + "\(rejected) rejected, \(writes) written, load \(String(format1: loadSeconds * 1000)) ms"
    }
}

/// Compiled OpenCL programs cached on disk, keyed by device name, driver version, platform version,
/// source hash and build options, under `$SWIFTCNN_CACHE_DIR` (default `~/.cache/swiftcnn/`).
///
/// Entry file: a text header (magic, the full SHA-256 key, the binary's size and SHA-256) then the
/// binary. An entry is used only if every header field matches and the driver accepts and builds
/// the binary; otherwise it is rebuilt from source and replaced. Writes go to a temporary file in
/// the same folder and are renamed into place, so a reader never sees half an entry.
package enum ProgramCache {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var _stats = ProgramCacheStats()

    package static var stats: ProgramCacheStats { lock.lock(); defer { lock.unlock() }; return _stats }
    package static func resetStats() { lock.lock(); _stats = ProgramCacheStats(); lock.unlock() }
    static func record(_ f: (inout ProgramCacheStats) -> Void) { lock.lock(); f(&_stats); lock.unlock() }

    /// `$SWIFTCNN_CACHE_DIR`, else `$HOME/.cache/swiftcnn` (programs live in its `programs/` folder).
    package static var directory: URL {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["SWIFTCNN_CACHE_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir, isDirectory: true) }
        let home = env["HOME"].map { URL(fileURLWithPath: $0, isDirectory: true) }
            ?? FileManager.default.homeDirectoryForCurrentUser
        return home.appendingPathComponent(".cache/swiftcnn", isDirectory: true)
    }

    static let magic = "SWIFTCNN-CLPROGRAM 1"

    /// The cache key: SHA-256 over everything that changes the compiled binary.
    static func key(device: OpenCLDeviceInfo, source: String, options: String) -> String {
        SHA256.hex([
            magic, "device=\(device.name)", "vendor=\(device.vendor)", "driver=\(device.driverVersion)",
            "deviceVersion=\(device.deviceVersion)", "platform=\(device.platformVersion)",
            "options=\(options)", "source=\(SHA256.hex(source))",
        ].joined(separator: "\n"))
    }

    static func entryURL(label: String, key: String, in root: URL? = nil) -> URL {
        let safe = String(label.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        return (root ?? directory).appendingPathComponent("programs", isDirectory: true)
            .appendingPathComponent("\(safe)-\(key.prefix(32)).clbin")
    }

    /// The binary stored for `key`, or nil when there is no entry or it is not trustworthy
    /// (counted in `rejected` when a file existed but failed a check).
    static func load(url: URL, key: String) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        let bytes = [UInt8](data)
        // Header: 4 lines then an empty line.
        var lines: [String] = []
        var start = 0
        var i = 0
        while i < bytes.count && lines.count < 5 {
            if bytes[i] == 0x0A {
                lines.append(String(decoding: bytes[start..<i], as: UTF8.self))
                start = i + 1
            }
            i += 1
        }
        guard lines.count == 5, lines[0] == magic, lines[1] == "key \(key)", lines[4].isEmpty,
              lines[2].hasPrefix("size "), let size = Int(lines[2].dropFirst(5)),
              lines[3].hasPrefix("sha256 "), size > 0, bytes.count - start == size
        else {
            record { $0.rejected += 1 }
            return nil
        }
        let binary = Array(bytes[start...])
        guard SHA256.hex(binary) == String(lines[3].dropFirst(7)) else {
            record { $0.rejected += 1 }
            return nil
        }
        return binary
    }

    /// Writes an entry atomically (temporary file + rename). Failures are counted, never thrown.
    static func store(url: URL, key: String, binary: [UInt8]) {
        let header = "\(magic)\nkey \(key)\nsize \(binary.count)\nsha256 \(SHA256.hex(binary))\n\n"
        var data = Data(header.utf8)
        data.append(contentsOf: binary)
        let fm = FileManager.default
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        do {
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: tmp)
            guard rename(tmp.path, url.path) == 0 else {
                try? fm.removeItem(at: tmp)
                record { $0.writeFailures += 1 }
                return
            }
            record { $0.writes += 1 }
        } catch {
            try? fm.removeItem(at: tmp)
            record { $0.writeFailures += 1 }
        }
    }
}

/// How `buildProgram` obtained a program.
enum ProgramOrigin: Equatable, Sendable {
    /// Loaded from a trusted cache entry.
    case cacheHit
    /// Compiled from source (no entry, or caching off).
    case compiled
    /// An entry existed but was not trusted; compiled from source and the entry replaced.
    case rebuilt
}

/// Builds `source` for one device, through the disk cache (under `cacheRoot`, default
/// `ProgramCache.directory`). A compile error throws `CNNError.device` carrying the driver's build log.
func buildProgram(context: cl_context?, device: cl_device_id?, info: OpenCLDeviceInfo,
                  source: String, options: String, label: String, useCache: Bool = true,
                  cacheRoot: URL? = nil) throws -> (program: cl_program?, origin: ProgramOrigin) {
    let key = ProgramCache.key(device: info, source: source, options: options)
    let url = ProgramCache.entryURL(label: label, key: key, in: cacheRoot)
    var dev = device
    var sawEntry = false

    if useCache { sawEntry = FileManager.default.fileExists(atPath: url.path) }
    if useCache, let binary = ProgramCache.load(url: url, key: key) {
        let t0 = Date()
        var status: cl_int = 0
        var binaryStatus: cl_int = 0
        var length = binary.count
        let program: cl_program? = binary.withUnsafeBufferPointer { buf in
            var ptr: UnsafePointer<UInt8>? = buf.baseAddress
            return clCreateProgramWithBinary(context, 1, &dev, &length, &ptr, &binaryStatus, &status)
        }
        if status == CL_SUCCESS, binaryStatus == CL_SUCCESS, let program,
           clBuildProgram(program, 1, &dev, options, nil, nil) == CL_SUCCESS {
            ProgramCache.record { $0.hits += 1; $0.loadSeconds += Date().timeIntervalSince(t0) }
            return (program, .cacheHit)
        }
        if let program { clReleaseProgram(program) }
        ProgramCache.record { $0.rejected += 1 }
    }

    let t0 = Date()
    var status: cl_int = 0
    let program: cl_program? = source.withCString { cstr in
        var ptr: UnsafePointer<CChar>? = cstr
        var length = strlen(cstr)
        return clCreateProgramWithSource(context, 1, &ptr, &length, &status)
    }
    try clCheck(status, "clCreateProgramWithSource(\(label))")
    let built = clBuildProgram(program, 1, &dev, options, nil, nil)
    if built != CL_SUCCESS {
        let log = buildLog(program, device)
        clReleaseProgram(program)
        throw CNNError.device(
            "OpenCL: building program '\(label)' for \(info.name) failed: \(CLStatus.describe(built))\n"
                + "build options: \(options)\nbuild log:\n\(log.isEmpty ? "(the driver gave no log)" : log)")
    }
    // The binary query is part of the cost: some drivers (PoCL) finish code generation for it.
    if useCache, let binary = programBinary(program) {
        ProgramCache.store(url: url, key: key, binary: binary)
    }
    ProgramCache.record { $0.compilations += 1; $0.compileSeconds += Date().timeIntervalSince(t0) }
    return (program, sawEntry ? .rebuilt : .compiled)
}

/// CL_PROGRAM_BUILD_LOG, trimmed to its last 16 KiB.
func buildLog(_ program: cl_program?, _ device: cl_device_id?) -> String {
    var size = 0
    guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size) == CL_SUCCESS,
          size > 1 else { return "" }
    var bytes = [CChar](repeating: 0, count: size + 1)
    guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil) == CL_SUCCESS
    else { return "" }
    let log = OpenCLDiscovery.trimmed(bytes)
    return log.count > 16_384 ? "...\n" + String(log.suffix(16_384)) : log
}

/// The program's binary for its single device (nil when the driver offers none).
func programBinary(_ program: cl_program?) -> [UInt8]? {
    var size = 0
    guard clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil) == CL_SUCCESS,
          size > 0 else { return nil }
    var binary = [UInt8](repeating: 0, count: size)
    let ok = binary.withUnsafeMutableBufferPointer { buf -> Bool in
        var ptr: UnsafeMutablePointer<UInt8>? = buf.baseAddress
        return clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES),
                                MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &ptr, nil) == CL_SUCCESS
    }
    return ok ? binary : nil
}
