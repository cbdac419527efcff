import ArgumentParser
import Foundation
import SwiftCNN

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every primitive of a device against the CPU reference.",
        discussion: """
        Runs each primitive on the device and on the plain CPU reference over odd shapes, N=1, sizes that are not \
        tile multiples, and the layer shapes of the cnn and optimized models; prints op, shape, max abs/rel error, \
        tolerance and pass/fail; exits 1 if any check fails. --device cpu checks the fast CPU path.
        """)

    @OptionGroup var deviceOption: DeviceOption
    @Flag(help: "Small shapes only (seconds instead of a minute on a CPU OpenCL device).") var quick = false
    @Option(help: "Batch size of the model-shape cases.") var batch: Int = 64

    func run() throws {
        defer { OpenCLBackend.releaseLibraryCaches() }   // before exit, see its doc comment (Oclgrind)
        let (device, reason) = try makeBackend(deviceOption.device ?? .opencl)
        note(reason)
        let reference = CPUBackend(reference: true)
        let cases = (quick ? VerifySuite.quick : VerifySuite.standard(batch: batch)) + DeviceInputCases.quick
        let start = Date()
        let rows = verify(device: device, reference: reference, cases: cases, progress: { _ in })
        print(formatVerifyTable(rows, device: device.info.description, reference: reference.info.description))
        note(String(format: "%d checks in %.1fs", rows.count, Date().timeIntervalSince(start)))
        if !allPassed(rows) { throw ExitCode(1) }
    }
}
