import CNNCore
import Foundation
@testable import OpenCLBackend
import Testing

/// The program-building path: build failures carry the build log; the disk cache is used when
/// valid and rebuilt when not. (The cross-process check is in ChildProcessTests.)
@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct ProgramCacheTests {
    /// A source no other test builds, so the cache folder starts without its entry.
    static func uniqueSource(_ tag: String) -> String {
        "// \(tag) \(UInt64.random(in: 0...UInt64.max))\n__kernel void probe(__global float* x, int n) {\n"
            + "    int i = get_global_id(0);\n    if (i < n) x[i] = 2.0f * x[i];\n}\n"
    }

    @Test func buildFailureThrowsWithTheBuildLog() throws {
        let b = try OCL.backend()
        let dir = try temporaryDirectory("broken")
        let broken = "__kernel void broken(__global float* x) {\n    x[0] = undefined_symbol_xyz + 1.0f;\n}\n"
        let error = #expect(throws: CNNError.self) {
            _ = try b.compileProgram(source: broken, label: "broken", cacheRoot: dir)
        }
        #expect(error?.kind == .device)
        let message = error?.message ?? ""
        #expect(message.contains("building program 'broken'"), "\(message)")
        #expect(message.contains("CL_BUILD_PROGRAM_FAILURE"), "\(message)")
        #expect(message.contains("build log:") && message.contains("undefined_symbol_xyz"), "the driver's log: \(message)")
        // Nothing was cached for the failed build.
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("programs").path)) ?? []
        #expect(entries.isEmpty)
    }

    @Test func secondBuildHitsTheCacheAndCorruptEntriesAreRebuilt() throws {
        let b = try OCL.backend()
        let dir = try temporaryDirectory("cache")
        let source = Self.uniqueSource("cache-test")
        #expect(try b.compileProgram(source: source, label: "probe", cacheRoot: dir) == .compiled)
        #expect(try b.compileProgram(source: source, label: "probe", cacheRoot: dir) == .cacheHit)
        // Other options are another key: compiled, not mistaken for the cached one.
        #expect(try b.compileProgram(source: source, options: "-cl-std=CL1.2 -D EXTRA=1", label: "probe", cacheRoot: dir) == .compiled)

        let folder = dir.appendingPathComponent("programs")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".clbin") }
        #expect(files.count == 2, "\(files)")
        #expect(!files.contains { $0.hasSuffix(".tmp") })
        let key = ProgramCache.key(device: b.deviceInfo, source: source, options: "-cl-std=CL1.2")
        let entry = ProgramCache.entryURL(label: "probe", key: key, in: dir)
        let good = try Data(contentsOf: entry)

        // A flipped byte in the binary: the checksum rejects it, the program is rebuilt and rewritten.
        var flipped = good
        flipped[flipped.count - 9] ^= 0x5A
        try flipped.write(to: entry)
        #expect(try b.compileProgram(source: source, label: "probe", cacheRoot: dir) == .rebuilt)
        #expect(try b.compileProgram(source: source, label: "probe", cacheRoot: dir) == .cacheHit)

        // Truncated, and garbage from the start: both rebuilt, never trusted.
        try good.prefix(good.count / 2).write(to: entry)
        #expect(try b.compileProgram(source: source, label: "probe", cacheRoot: dir) == .rebuilt)
        try Data("not a program".utf8).write(to: entry)
        #expect(try b.compileProgram(source: source, label: "probe", cacheRoot: dir) == .rebuilt)
        #expect(try b.compileProgram(source: source, label: "probe", cacheRoot: dir) == .cacheHit)

        // An entry for a different key copied over this one (stale): the header's key does not match.
        let otherKey = ProgramCache.key(device: b.deviceInfo, source: source, options: "-cl-std=CL1.2 -D EXTRA=1")
        let other = ProgramCache.entryURL(label: "probe", key: otherKey, in: dir)
        try FileManager.default.removeItem(at: entry)
        try FileManager.default.copyItem(at: other, to: entry)
        #expect(try b.compileProgram(source: source, label: "probe", cacheRoot: dir) == .rebuilt)
        #expect(try b.compileProgram(source: source, label: "probe", cacheRoot: dir) == .cacheHit)
    }

    @Test func cachingCanBeBypassed() throws {
        let b = try OCL.backend()
        let dir = try temporaryDirectory("nocache")
        let source = Self.uniqueSource("no-cache")
        #expect(try b.compileProgram(source: source, label: "probe", useCache: false, cacheRoot: dir) == .compiled)
        #expect(try b.compileProgram(source: source, label: "probe", useCache: false, cacheRoot: dir) == .compiled)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("programs").path))
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(String(repeating: "a", count: 1000)).count == 64)
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }
}
