import CNNCore
import Datasets
import Foundation

/// Scalar curves, images and histograms in TensorBoard's event-file format, so `tensorboard --logdir
/// runs` shows a run's loss, accuracy, learning rate, sample grids, filters and weight/gradient
/// histograms next to PyTorch's `SummaryWriter` runs.
///
/// Format: a TFRecord file (`events.out.tfevents.<seconds>.<host>`) of serialized `Event` protocol
/// buffers. Each record is
///   uint64 length (little endian) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data,
/// masked CRC = ((crc >> 15) | (crc << 17)) + 0xa282ead8. The first event holds
/// `file_version = "brain.Event:2"`; each later one `wall_time`, `step` and a `Summary` with one
/// `Value { tag, simple_value }` per scalar. Protobuf fields used (tensorflow/core/util/event.proto,
/// summary.proto): Event.wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
/// summary = 5; Summary.value = 1; Value.tag = 1 (string), simple_value = 2 (float).
package final class TensorBoardWriter {
    package let url: URL
    private let handle: FileHandle

    /// Creates a new event file in `directory` (a run folder) and writes its version record.
    package init(directory: URL, now: Date = Date()) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        url = directory.appendingPathComponent("events.out.tfevents.\(Int(now.timeIntervalSince1970)).\(host)")
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
              let h = try? FileHandle(forWritingTo: url) else {
            throw CNNError.io("cannot create the TensorBoard event file \(url.path): check that the run folder is writable")
        }
        handle = h
        var event = Protobuf()
        event.double(field: 1, now.timeIntervalSince1970)
        event.string(field: 3, "brain.Event:2")
        try write(record: event.bytes)
    }

    deinit { try? handle.close() }

    /// Appends one event with the given scalars at `step` (e.g. the epoch) and flushes it to disk.
    package func add(scalars: [(tag: String, value: Double)], step: Int, wallTime: Date = Date()) throws {
        var summary = Protobuf()
        for (tag, value) in scalars {
            var v = Protobuf()
            v.string(field: 1, tag)
            v.float(field: 2, Float(value))
            summary.message(field: 1, v)
        }
        var event = Protobuf()
        event.double(field: 1, wallTime.timeIntervalSince1970)
        event.varint(field: 2, UInt64(bitPattern: Int64(step)))
        event.message(field: 5, summary)
        try write(record: event.bytes)
    }

    /// Appends one event with PNG images (`Summary.Value.image`: Image { height = 1, width = 2,
    /// colorspace = 3 (1 grey, 3 RGB, 4 RGBA), encoded_image_string = 4 }) at `step`.
    package func add(images: [(tag: String, image: DecodedImage)], step: Int, wallTime: Date = Date()) throws {
        var summary = Protobuf()
        for (tag, image) in images {
            var img = Protobuf()
            img.varint(field: 1, UInt64(image.height))
            img.varint(field: 2, UInt64(image.width))
            img.varint(field: 3, UInt64(image.channels))
            img.bytesField(field: 4, try Figures.pngData(image))
            var v = Protobuf()
            v.string(field: 1, tag)
            v.message(field: 4, img)
            summary.message(field: 1, v)
        }
        try write(summary: summary, step: step, wallTime: wallTime)
    }

    /// Appends one event with a histogram per tag (`Summary.Value.histo`: HistogramProto { min = 1,
    /// max = 2, num = 3, sum = 4, sum_squares = 5, bucket_limit = 6, bucket = 7 }, the two repeated
    /// doubles packed) at `step`. Non-finite values are left out of the histogram.
    package func add(histograms: [(tag: String, values: [Float])], step: Int, buckets: Int = 30, wallTime: Date = Date()) throws {
        var summary = Protobuf()
        for (tag, values) in histograms {
            let h = Histogram(values, buckets: buckets)
            var p = Protobuf()
            p.double(field: 1, h.min)
            p.double(field: 2, h.max)
            p.double(field: 3, Double(h.count))
            p.double(field: 4, h.sum)
            p.double(field: 5, h.sumSquares)
            p.packedDoubles(field: 6, h.limits)
            p.packedDoubles(field: 7, h.counts)
            var v = Protobuf()
            v.string(field: 1, tag)
            v.message(field: 5, p)
            summary.message(field: 1, v)
        }
        try write(summary: summary, step: step, wallTime: wallTime)
    }

    private func write(summary: Protobuf, step: Int, wallTime: Date) throws {
        var event = Protobuf()
        event.double(field: 1, wallTime.timeIntervalSince1970)
        event.varint(field: 2, UInt64(bitPattern: Int64(step)))
        event.message(field: 5, summary)
        try write(record: event.bytes)
    }

    private func write(record data: [UInt8]) throws {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
        out += length
        out += withUnsafeBytes(of: CRC32C.masked(length).littleEndian) { Array($0) }
        out += data
        out += withUnsafeBytes(of: CRC32C.masked(data).littleEndian) { Array($0) }
        do {
            try handle.write(contentsOf: out)
            try handle.synchronize()
        } catch {
            throw CNNError.io("cannot write the TensorBoard event file \(url.path): \(error)")
        }
    }

    /// Reads the records of an event file back, checking both CRCs of each (for tests and tools).
    package static func readRecords(_ url: URL) throws -> [[UInt8]] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw CNNError.io("cannot read \(url.path)") }
        let bytes = [UInt8](data)
        var records: [[UInt8]] = []
        var i = 0
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
        while i < bytes.count {
            guard i + 12 <= bytes.count else { throw CNNError.invalidData("\(url.path): truncated record header at byte \(i)") }
            let lengthBytes = Array(bytes[i..<(i + 8)])
            let n = Int(lengthBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            guard u32(i + 8) == CRC32C.masked(lengthBytes) else { throw CNNError.invalidData("\(url.path): bad length CRC at byte \(i)") }
            guard n >= 0, i + 12 + n + 4 <= bytes.count else { throw CNNError.invalidData("\(url.path): truncated record at byte \(i)") }
            let record = Array(bytes[(i + 12)..<(i + 12 + n)])
            guard u32(i + 12 + n) == CRC32C.masked(record) else { throw CNNError.invalidData("\(url.path): bad data CRC at byte \(i)") }
            records.append(record)
            i += 12 + n + 4
        }
        return records
    }
}

/// The protobuf wire format, writing only (the few field types the event file needs).
struct Protobuf {
    private(set) var bytes: [UInt8] = []

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    private mutating func key(_ field: Int, _ wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }

    mutating func varint(field: Int, _ v: UInt64) { key(field, 0); rawVarint(v) }
    mutating func double(field: Int, _ v: Double) {
        key(field, 1)
        withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 }
    }
    mutating func float(field: Int, _ v: Float) {
        key(field, 5)
        withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 }
    }
    mutating func bytesField(field: Int, _ b: [UInt8]) { key(field, 2); rawVarint(UInt64(b.count)); bytes += b }
    mutating func packedDoubles(field: Int, _ values: [Double]) {
        var b: [UInt8] = []
        b.reserveCapacity(8 * values.count)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { b += $0 } }
        bytesField(field: field, b)
    }
    mutating func string(field: Int, _ s: String) { bytesField(field: field, Array(s.utf8)) }
    mutating func message(field: Int, _ m: Protobuf) { bytesField(field: field, m.bytes) }
}

/// Equal-width buckets between the finite values' min and max: `limits[i]` is bucket i's right edge
/// (the last one the maximum), `counts[i]` the values in (limits[i-1], limits[i]].
struct Histogram {
    var min = 0.0, max = 0.0, sum = 0.0, sumSquares = 0.0
    var count = 0
    var limits: [Double] = []
    var counts: [Double] = []

    init(_ values: [Float], buckets: Int) {
        let finite = values.filter { $0.isFinite }.map(Double.init)
        count = finite.count
        guard let lo = finite.min(), let hi = finite.max() else { limits = [0]; counts = [0]; return }
        (min, max) = (lo, hi)
        sum = finite.reduce(0, +)
        sumSquares = finite.reduce(0) { $0 + $1 * $1 }
        let n = hi > lo ? Swift.max(buckets, 1) : 1
        let width = (hi - lo) / Double(n)
        limits = (1...n).map { $0 == n ? hi : lo + Double($0) * width }
        counts = [Double](repeating: 0, count: n)
        for v in finite {
            let i = width > 0 ? Int(((v - lo) / width).rounded(.up)) - 1 : 0
            counts[Swift.min(Swift.max(i, 0), n - 1)] += 1
        }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    static func checksum(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func masked(_ data: [UInt8]) -> UInt32 {
        let c = checksum(data)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}
