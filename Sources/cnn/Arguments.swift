import ArgumentParser
import SwiftCNN

// The library's setting types as command-line values (the library does not depend on
// ArgumentParser). Enums with fixed cases get ArgumentParser's value list in --help and its
// "please provide one of ..." error for free.

extension ModelKind: ExpressibleByArgument {
    /// `--help` lists each model with its one-line summary.
    public static var allValueDescriptions: [String: String] {
        Dictionary(uniqueKeysWithValues: allCases.map { ($0.rawValue, $0.summary) })
    }
}
extension TrainConfig.OptimizerKind: ExpressibleByArgument {}
extension Recipe: ExpressibleByArgument {
    public static var allValueDescriptions: [String: String] {
        Dictionary(uniqueKeysWithValues: allCases.map { ($0.rawValue, $0.summary) })
    }
}
extension TrainConfig.DataFormat: ExpressibleByArgument {}
extension ScheduleKind: ExpressibleByArgument {}
extension RotationInterpolation: ExpressibleByArgument {}
extension PaddingMode: ExpressibleByArgument {}
extension NonFinitePolicy: ExpressibleByArgument {}

extension DeviceRequest: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
    public var defaultValueDescription: String { description }
}
