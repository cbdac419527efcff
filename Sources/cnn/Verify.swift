import ArgumentParser
import Foundation
import SwiftCNN

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every primitive on a device and on the CPU reference; print a table; exit 1 on any failure.")

    @OptionGroup var deviceOption: DeviceOption

    func run() throws {
        let device = try deviceOption.make(default: "opencl")
        let reference = CPUBackend(reference: true)
        _ = device
        _ = reference
        throw ValidationError("verify: not wired yet")
    }
}
