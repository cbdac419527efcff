import Foundation
import CNNCore

/// MD5 (RFC 1321), streaming. Used only to verify the CIFAR-10 download against its published
/// checksum — not for anything security-related.
///
///     var h = MD5(); h.update(bytes); let hex = h.finalize().hex
package struct MD5: Sendable {
    private var state: (UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476)
    private var buffer: [UInt8] = []   // < 64 pending bytes
    private var length: UInt64 = 0     // bytes hashed so far

    package init() { buffer.reserveCapacity(64) }

    private static let s: [UInt32] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
        5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ]
    /// K[i] = floor(2^32 * |sin(i + 1)|).
    private static let k: [UInt32] = (0..<64).map { UInt32(truncatingIfNeeded: Int64(abs(sin(Double($0 + 1))) * 4_294_967_296.0)) }

    package mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        length &+= UInt64(bytes.count)
        var rest = bytes[...]
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, rest.count)
            buffer.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
            if buffer.count == 64 {
                buffer.withUnsafeBufferPointer { compress($0.baseAddress!) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        let whole = rest.count / 64 * 64
        if whole > 0 {
            let block = Array(rest.prefix(whole))
            block.withUnsafeBufferPointer { p in
                var off = 0
                while off < whole { compress(p.baseAddress! + off); off += 64 }
            }
            rest = rest.dropFirst(whole)
        }
        buffer.append(contentsOf: rest)
    }

    /// The 16-byte digest. Hashing more after this is a programming error.
    package mutating func finalize() -> Digest {
        let bitLength = length &* 8
        var pad: [UInt8] = [0x80]
        let used = Int(length % 64)
        let zeros = (used < 56 ? 55 - used : 119 - used)
        pad += [UInt8](repeating: 0, count: zeros)
        for i in 0..<8 { pad.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        let saved = length
        update(pad)
        length = saved
        precondition(buffer.isEmpty)
        var out: [UInt8] = []
        for w in [state.0, state.1, state.2, state.3] {
            for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: w >> (8 * UInt32(i)))) }
        }
        return Digest(bytes: out)
    }

    package struct Digest: Sendable, Equatable, CustomStringConvertible {
        package let bytes: [UInt8]
        /// Lower-case hexadecimal, as `md5sum` prints it.
        package var hex: String {
            let digits = Array("0123456789abcdef")
            return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
        }
        package var description: String { hex }
    }

    /// Digest of `bytes` in one call.
    package static func hash<C: Collection>(_ bytes: C) -> Digest where C.Element == UInt8 {
        var h = MD5()
        h.update(bytes)
        return h.finalize()
    }

    /// Digest of the file at `path`, read in 1 MiB chunks.
    package static func hash(fileAt path: String) throws -> Digest {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CNNError.io("cannot open \(path) to compute its MD5")
        }
        defer { try? handle.close() }
        var h = MD5()
        while true {
            let chunk = try handle.read(upToCount: 1 << 20) ?? Data()
            if chunk.isEmpty { break }
            h.update(chunk)
        }
        return h.finalize()
    }

    private mutating func compress(_ p: UnsafePointer<UInt8>) {
        let raw = UnsafeRawPointer(p)
        @inline(__always) func m(_ g: Int) -> UInt32 { raw.loadUnaligned(fromByteOffset: 4 * g, as: UInt32.self).littleEndian }
        var (a, b, c, d) = state
        for i in 0..<64 {
            var f: UInt32
            let g: Int
            switch i {
            case 0..<16: f = (b & c) | (~b & d); g = i
            case 16..<32: f = (d & b) | (~d & c); g = (5 * i + 1) % 16
            case 32..<48: f = b ^ c ^ d; g = (3 * i + 5) % 16
            default: f = c ^ (b | ~d); g = (7 * i) % 16
            }
            f = f &+ a &+ MD5.k[i] &+ m(g)
            a = d
            d = c
            c = b
            b = b &+ ((f << MD5.s[i]) | (f >> (32 - MD5.s[i])))
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d)
    }
}
