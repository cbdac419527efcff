/// Errors thrown across SwiftCNN. Every message says what was wrong, where, and what to do.
public struct CNNError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case invalidArgument   // a caller passed something inconsistent (shape, option, value)
        case invalidData       // a file or record is malformed
        case io                // a file could not be read or written
        case device            // a compute device failed (OpenCL error, build failure, ...)
        case unsupported       // the requested thing does not exist here
    }
    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }

    public static func invalidArgument(_ m: String) -> CNNError { CNNError(.invalidArgument, m) }
    public static func invalidData(_ m: String) -> CNNError { CNNError(.invalidData, m) }
    public static func io(_ m: String) -> CNNError { CNNError(.io, m) }
    public static func device(_ m: String) -> CNNError { CNNError(.device, m) }
    public static func unsupported(_ m: String) -> CNNError { CNNError(.unsupported, m) }
}

/// Throws `invalidArgument` with `message` unless `condition` holds.
@inline(__always)
package func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) throws {
    if !condition() { throw CNNError.invalidArgument(message()) }
}
