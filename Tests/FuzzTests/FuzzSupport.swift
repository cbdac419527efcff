import CNNCore
import Foundation
import Synchronization
import Testing

// A small deterministic mutation fuzzer for the file readers (docs/reliability.md, "Fuzzing").
//
// Each target has a seed corpus (tiny valid files, generated in code or kept in Fuzz/), a seeded
// mutator and a body that must either return or throw: a trap, precondition, out-of-bounds
// access or exit() kills the test process (the failure), and a call that runs longer than the
// watchdog's limit aborts it with the target and input named. Inputs that parse join the pool,
// so later mutations start from deeper variants (a cheap stand-in for coverage feedback).
//
// Environment:
//   SWIFTCNN_FUZZ_ITERATIONS=N  inputs per target (default: each target's CI count)
//   SWIFTCNN_FUZZ_SEED=S        base seed (default 1); a failure reproduces with the same seed
// The input under test is written to $TMPDIR/swiftcnn-fuzz-<target>.bin before each call and
// removed when the target finishes: after a crash, that file is the crashing input. The slowest
// input, when a call takes more than 0.25 s, is kept in $TMPDIR/swiftcnn-fuzz-<target>-slowest.bin.

enum Fuzz {
    /// The committed seed corpus folder (Tests/FuzzTests/Fuzz).
    static let corpusDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fuzz")

    static func corpusFile(_ name: String) throws -> [UInt8] {
        let url = corpusDirectory.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CNNError.io("fuzz corpus file \(url.path) is missing")
        }
        return [UInt8](data)
    }

    /// Writes `bytes` to `path` in place (no temporary file, no sync: thousands of times a second).
    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        guard let f = fopen(path, "wb") else { return }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }

    static func iterations(default n: Int) -> Int {
        if let s = ProcessInfo.processInfo.environment["SWIFTCNN_FUZZ_ITERATIONS"], let v = Int(s), v > 0 { return v }
        return n
    }

    static var baseSeed: UInt64 {
        if let s = ProcessInfo.processInfo.environment["SWIFTCNN_FUZZ_SEED"], let v = UInt64(s) { return v }
        return 1
    }

    /// What a session did: how many inputs ran, parsed and threw, and how long it took.
    struct Report: CustomStringConvertible {
        var target: String
        var executions = 0
        var parsed = 0
        var cnnErrors = 0
        var otherErrors: [String: Int] = [:]
        var seconds: Double = 0
        var slowest: Double = 0
        var description: String {
            let other = otherErrors.isEmpty ? "" : ", other errors \(otherErrors.sorted { $0.key < $1.key })"
            return "fuzz \(target): \(executions) inputs in \(String(format: "%.2f", seconds)) s "
                + "(\(Int(Double(executions) / max(seconds, 1e-9))) /s, slowest \(String(format: "%.1f", slowest * 1000)) ms): "
                + "\(parsed) parsed, \(cnnErrors) CNNErrors\(other)"
        }
    }

    /// Runs `iterations` mutated inputs through `body`. `structured`, when given, is used for half
    /// of the inputs instead of the plain byte mutator (e.g. to mutate a header and re-frame it).
    @discardableResult
    static func run(_ target: String, corpus: [[UInt8]], iterations: Int, seed: UInt64 = 0,
                    dictionary: [[UInt8]] = [], fields: [Int] = [], maxLength: Int = 1 << 16,
                    perCallLimit: Double = 10,
                    fixup: ((inout [UInt8], inout SeededRNG) -> Void)? = nil,
                    structured: ((inout [UInt8], inout Mutator) -> Void)? = nil,
                    _ body: ([UInt8]) throws -> Void) -> Report {
        precondition(!corpus.isEmpty)
        let s = baseSeed &* 0x9E37_79B9_7F4A_7C15 &+ seed
        var mutator = Mutator(rng: SeededRNG(seed: s), dictionary: dictionary, fields: fields, maxLength: maxLength)
        let crashFile = NSTemporaryDirectory() + "swiftcnn-fuzz-\(target).bin"
        let watchdog = Watchdog(target: target, seed: s, inputFile: crashFile, limit: perCallLimit)
        defer { watchdog.stop() }
        var pool = corpus
        var report = Report(target: target)
        let clock = ContinuousClock()
        let start = clock.now
        // The seeds themselves first: they must all parse.
        for (i, input) in corpus.enumerated() {
            do { try body(input) } catch {
                Issue.record("fuzz \(target): seed \(i) of the corpus does not parse: \(error)")
            }
        }
        for i in 0..<iterations {
            var input = pool[mutator.rng.nextInt(pool.count)]
            if let structured, mutator.rng.nextInt(2) == 0 {
                structured(&input, &mutator)
            } else {
                mutator.mutate(&input, other: pool[mutator.rng.nextInt(pool.count)])
            }
            if let fixup, mutator.rng.nextInt(4) != 0 { fixup(&input, &mutator.rng) }
            writeFile(crashFile, input)
            watchdog.begin(i)
            let t0 = clock.now
            do {
                try body(input)
                report.parsed += 1
                if pool.count < 256 { pool.append(input) } else { pool[corpus.count + mutator.rng.nextInt(256 - corpus.count)] = input }
            } catch is CNNError {
                report.cnnErrors += 1
            } catch {
                report.otherErrors["\(type(of: error))", default: 0] += 1
            }
            let dt = (clock.now - t0).seconds
            watchdog.end()
            if dt > report.slowest {
                report.slowest = dt
                // The slowest input so far, when slow enough to look into (a hang in the making).
                if dt > 0.25 { writeFile(NSTemporaryDirectory() + "swiftcnn-fuzz-\(target)-slowest.bin", input) }
            }
            report.executions += 1
        }
        report.seconds = (clock.now - start).seconds
        try? FileManager.default.removeItem(atPath: crashFile)
        print(report)
        return report
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// The byte-level mutations. Every choice comes from `rng`, so a seed reproduces a session.
struct Mutator {
    var rng: SeededRNG
    /// Tokens worth inserting (format keywords, chunk names, JSON fragments).
    var dictionary: [[UInt8]]
    /// Byte offsets of header integer fields (lengths, widths, heights) to tweak preferentially.
    var fields: [Int]
    var maxLength: Int

    static let interestingBytes: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF]
    static let interestingIntegers: [UInt64] = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                                                0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000,
                                                0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, UInt64.max]
    static let interestingNumbers = ["0", "-1", "1", "-0", "1e308", "-1e308", "1e-320", "NaN", "2147483648", "4294967296",
                                     "9223372036854775807", "9223372036854775808", "-9223372036854775808",
                                     "18446744073709551616", "99999999999999999999999", "0.5", "3.4e38", "1.5"]

    /// Applies 1, 2, 4 or 8 stacked mutations.
    mutating func mutate(_ b: inout [UInt8], other: [UInt8]) {
        let n = 1 << rng.nextInt(4)
        for _ in 0..<n { mutateOnce(&b, other: other) }
        if b.count > maxLength { b.removeLast(b.count - maxLength) }
    }

    mutating func mutateOnce(_ b: inout [UInt8], other: [UInt8]) {
        switch rng.nextInt(13) {
        case 0, 1:  // bit flip
            guard !b.isEmpty else { return }
            b[rng.nextInt(b.count)] ^= UInt8(1) << UInt8(rng.nextInt(8))
        case 2:  // byte set to an interesting value
            guard !b.isEmpty else { return }
            b[rng.nextInt(b.count)] = Mutator.interestingBytes[rng.nextInt(Mutator.interestingBytes.count)]
        case 3:  // random byte
            guard !b.isEmpty else { return }
            b[rng.nextInt(b.count)] = UInt8(truncatingIfNeeded: rng.next())
        case 4:  // truncation
            guard !b.isEmpty else { return }
            b.removeLast(b.count - rng.nextInt(b.count))
        case 5:  // extension with random bytes
            let k = 1 + rng.nextInt(rng.nextInt(2) == 0 ? 16 : 512)
            b += (0..<k).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case 6:  // chunk duplication
            guard !b.isEmpty else { return }
            let (lo, hi) = range(in: b.count)
            b.insert(contentsOf: Array(b[lo..<hi]), at: rng.nextInt(b.count + 1))
        case 7:  // chunk deletion
            guard !b.isEmpty else { return }
            let (lo, hi) = range(in: b.count)
            b.removeSubrange(lo..<hi)
        case 8, 9:  // integer field tweak, at a header field or anywhere
            tweakInteger(&b)
        case 10:  // dictionary token, inserted or overwriting
            guard !dictionary.isEmpty else { return tweakInteger(&b) }
            let t = dictionary[rng.nextInt(dictionary.count)]
            let at = rng.nextInt(b.count + 1)
            if rng.nextInt(2) == 0 || at + t.count > b.count { b.insert(contentsOf: t, at: at) } else { b.replaceSubrange(at..<(at + t.count), with: t) }
        case 11:  // splice from another input
            guard !other.isEmpty, !b.isEmpty else { return }
            let (lo, hi) = range(in: other.count)
            let at = rng.nextInt(b.count)
            b.replaceSubrange(at..<min(b.count, at + (hi - lo)), with: other[lo..<hi])
        default:  // a decimal number in text replaced by an interesting one
            tweakDecimal(&b)
        }
    }

    /// A random range of at most 1/4 of `count` (at least 1 byte).
    mutating func range(in count: Int) -> (Int, Int) {
        let len = 1 + rng.nextInt(max(1, count / 4))
        let lo = rng.nextInt(max(1, count - len + 1))
        return (lo, min(count, lo + len))
    }

    mutating func tweakInteger(_ b: inout [UInt8]) {
        let width = [1, 2, 4, 8][rng.nextInt(4)]
        guard b.count >= width else { return }
        let at: Int
        if !fields.isEmpty && rng.nextInt(3) != 0 {
            at = min(fields[rng.nextInt(fields.count)], b.count - width)
        } else {
            at = rng.nextInt(b.count - width + 1)
        }
        let bigEndian = rng.nextInt(2) == 0
        var v: UInt64 = 0
        for k in 0..<width { v |= UInt64(b[at + k]) << (8 * UInt64(bigEndian ? width - 1 - k : k)) }
        switch rng.nextInt(3) {
        case 0: v = Mutator.interestingIntegers[rng.nextInt(Mutator.interestingIntegers.count)]
        case 1: v &+= UInt64(1 + rng.nextInt(16))
        default: v &-= UInt64(1 + rng.nextInt(16))
        }
        for k in 0..<width { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(bigEndian ? width - 1 - k : k))) }
    }

    mutating func tweakDecimal(_ b: inout [UInt8]) {
        let isDigit = { (c: UInt8) in c >= 0x30 && c <= 0x39 }
        let starts = b.indices.filter { isDigit(b[$0]) && ($0 == 0 || !isDigit(b[$0 - 1])) }
        guard !starts.isEmpty else { return tweakInteger(&b) }
        let lo = starts[rng.nextInt(starts.count)]
        var hi = lo
        while hi < b.count && isDigit(b[hi]) { hi += 1 }
        b.replaceSubrange(lo..<hi, with: Array(Mutator.interestingNumbers[rng.nextInt(Mutator.interestingNumbers.count)].utf8))
    }
}

/// Aborts the process when one call runs past `limit` seconds, naming the target, the input
/// number and where the input is (a hang must fail the suite, not stall CI).
final class Watchdog: Sendable {
    private let state = Mutex<(iteration: Int, started: ContinuousClock.Instant?, stopped: Bool)>((0, nil, false))
    let target: String, seed: UInt64, inputFile: String, limit: Double

    init(target: String, seed: UInt64, inputFile: String, limit: Double) {
        (self.target, self.seed, self.inputFile, self.limit) = (target, seed, inputFile, limit)
        Thread { [self] in watch() }.start()
    }

    private func watch() {
        while true {
            Thread.sleep(forTimeInterval: 0.1)
            let (i, started, stopped) = state.withLock { ($0.iteration, $0.started, $0.stopped) }
            if stopped { return }
            if let started, (ContinuousClock.now - started).seconds > limit {
                FileHandle.standardError.write(Data(("fuzz watchdog: \(target) input \(i) (seed \(seed)) has run for more than \(limit) s: "
                    + "a hang. The input is in \(inputFile).\n").utf8))
                abort()
            }
        }
    }
    func begin(_ i: Int) { state.withLock { $0.iteration = i; $0.started = .now } }
    func end() { state.withLock { $0.started = nil } }
    func stop() { state.withLock { $0.stopped = true } }
}

/// CRC-32 (PNG, zlib), to repair chunk checksums after a mutation so libpng looks past them.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
    static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
