import CNNCore
import Foundation

/// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
/// header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}`
/// padded with spaces to a multiple of 8, then the raw little-endian tensor bytes.
/// Supported dtypes: F32 and I64 (BatchNorm's num_batches_tracked).
public enum SafeTensors {
    public static func encode(_ entries: [(String, StateValue)], metadata: [String: String] = [:]) throws -> Data {
        var out = Data()
        try serialize(entries, metadata: metadata) { out.append(contentsOf: $0) }
        return out
    }

    /// The file's bytes in order, handed to `emit` piece by piece: the 8-byte length, the header,
    /// then each tensor's values straight from its array (no second copy of the weights).
    static func serialize(_ entries: [(String, StateValue)], metadata: [String: String],
                          _ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var header = "{"
        var first = true
        func appendKey(_ s: String) { header += (first ? "" : ",") + jsonString(s) + ":"; first = false }
        if !metadata.isEmpty {
            appendKey("__metadata__")
            header += "{" + metadata.sorted { $0.key < $1.key }.map { jsonString($0.key) + ":" + jsonString($0.value) }.joined(separator: ",") + "}"
        }
        var offset = 0
        for (name, value) in entries {
            try require(name != "__metadata__" && !name.isEmpty, "invalid tensor name '\(name)'")
            let dtype: String, shape: Shape, bytes: Int
            switch value {
            case .float(let t):
                dtype = "F32"; shape = t.shape; bytes = t.values.count * 4
            case .int64(let s, let v):
                dtype = "I64"; shape = s; bytes = v.count * 8
                try require(v.count == s.count, "tensor '\(name)': \(v.count) values for shape \(s)")
            }
            appendKey(name)
            header += "{\"dtype\":\"\(dtype)\",\"shape\":[\(shape.dims.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        while header.utf8.count % 8 != 0 { header += " " }
        var n = UInt64(header.utf8.count).littleEndian
        try withUnsafeBytes(of: &n) { try emit($0) }
        try Array(header.utf8).withUnsafeBytes { try emit($0) }
        for (_, value) in entries {
            switch value {
            case .float(let t): try t.values.withUnsafeBytes { try emit($0) }
            case .int64(_, let v): try v.withUnsafeBytes { try emit($0) }
            }
        }
    }

    public static func decode(_ data: Data, source: String) throws -> (entries: [(String, StateValue)], metadata: [String: String]) {
        func bad(_ m: String) -> CNNError { CNNError.invalidData("\(source): not a valid safetensors file: \(m)") }
        guard data.count >= 8 else { throw bad("only \(data.count) bytes") }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) }
        guard n <= UInt64(data.count - 8), n < 100_000_000 else { throw bad("header length \(n) exceeds the file size \(data.count)") }
        let headerData = data.subdata(in: 8..<(8 + Int(n)))
        guard let obj = try? JSONSerialization.jsonObject(with: headerData), let dict = obj as? [String: Any] else {
            throw bad("the JSON header does not parse")
        }
        let base = 8 + Int(n)
        var metadata: [String: String] = [:]
        if let m = dict["__metadata__"] as? [String: String] { metadata = m }
        var entries: [(String, StateValue, Int)] = []
        for (name, v) in dict where name != "__metadata__" {
            guard let info = v as? [String: Any], let dtype = info["dtype"] as? String,
                  let shapeArr = info["shape"] as? [Int], let offs = info["data_offsets"] as? [Int], offs.count == 2 else {
                throw bad("entry '\(name)' lacks dtype/shape/data_offsets")
            }
            // A hostile header must not trap: negative dimensions, element counts that overflow,
            // offsets past the end of the file (checked without overflowing either).
            guard shapeArr.allSatisfy({ $0 >= 0 }) else { throw bad("tensor '\(name)' has a negative dimension in its shape \(shapeArr)") }
            let size = dtype == "F32" ? 4 : dtype == "I64" ? 8 : 0
            guard size > 0 else { throw bad("tensor '\(name)' has dtype \(dtype); SwiftCNN reads F32 and I64 (save with float32 weights)") }
            let byteCount = shapeArr.reduce(Optional(size)) { n, d in
                n.flatMap { let (p, o) = $0.multipliedReportingOverflow(by: d); return o ? nil : p }
            }
            guard let byteCount else { throw bad("tensor '\(name)' \(dtype)\(shapeArr) has more bytes than a file can hold") }
            let shape = Shape(shapeArr)
            let (b, e) = (offs[0], offs[1])
            guard b >= 0, e >= b, e <= data.count - base, e - b == byteCount else {
                throw bad("tensor '\(name)' \(dtype)\(shape): data_offsets [\(b), \(e)] do not match its size or the file (\(data.count) bytes)")
            }
            let bytes = data.subdata(in: (base + b)..<(base + e))
            if size == 4 {
                var vals = [Float](repeating: 0, count: shape.count)
                vals.withUnsafeMutableBytes { dst in _ = bytes.copyBytes(to: dst) }
                entries.append((name, .float(HostTensor(shape: shape, values: vals)), b))
            } else {
                var vals = [Int64](repeating: 0, count: shape.count)
                vals.withUnsafeMutableBytes { dst in _ = bytes.copyBytes(to: dst) }
                entries.append((name, .int64(shape: shape, values: vals), b))
            }
        }
        return (entries.sorted { $0.2 < $1.2 }.map { ($0.0, $0.1) }, metadata)
    }

    /// Writes atomically (see `AtomicFile`), streaming the tensors to the file.
    public static func write(_ entries: [(String, StateValue)], metadata: [String: String] = [:], to url: URL) throws {
        try AtomicFile.write(to: url) { emit in try serialize(entries, metadata: metadata, emit) }
    }

    public static func read(_ url: URL) throws -> (entries: [(String, StateValue)], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CNNError.io("cannot read \(url.path): no such file or not readable")
        }
        return try decode(data, source: url.path)
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if ch.value < 0x20 { out += String(format: "\\u%04x", ch.value) } else { out.unicodeScalars.append(ch) }
            }
        }
        return out + "\""
    }
}
