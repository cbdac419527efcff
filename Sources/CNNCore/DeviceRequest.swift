/// What `--device` (or a config's `device`) asks for: `auto`, `cpu`, `opencl` or `opencl:P:D`.
/// Resolving it on a machine is `selectDevice` (OpenCLBackend); building the backend is
/// `makeBackend` (SwiftCNN). Encoded in config files and checkpoints as its text, `description`.
public enum DeviceRequest: Equatable, Hashable, Sendable, CustomStringConvertible, Codable {
    case auto
    case cpu
    case opencl
    case openclDevice(platform: Int, device: Int)

    /// The accepted forms, for messages and help.
    public static let validForms = "auto, cpu, opencl or opencl:P:D"

    /// Parses `auto|cpu|opencl|opencl:P:D` (case-insensitive, surrounding spaces ignored).
    public static func parse(_ text: String) throws -> DeviceRequest {
        if let r = DeviceRequest(text) { return r }
        throw CNNError.invalidArgument(
            "device '\(text)' is not valid; use \(validForms) "
                + "(platform and device numbers as listed by `cnn devices`, e.g. opencl:0:0)")
    }

    /// Parses `auto|cpu|opencl|opencl:P:D` (case-insensitive, surrounding spaces ignored); nil otherwise.
    public init?(_ text: String) {
        let s = String(text.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()).lowercased()
        switch s {
        case "auto": self = .auto; return
        case "cpu": self = .cpu; return
        case "opencl": self = .opencl; return
        default: break
        }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "opencl", let p = Int(parts[1]), let d = Int(parts[2]), p >= 0, d >= 0 {
            self = .openclDevice(platform: p, device: d)
            return
        }
        return nil
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .cpu: return "cpu"
        case .opencl: return "opencl"
        case let .openclDevice(p, d): return "opencl:\(p):\(d)"
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let r = DeviceRequest(s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "'\(s)' is not a device; use \(DeviceRequest.validForms)")
        }
        self = r
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
