import ArgumentParser
import Foundation
import SwiftCNN

@main
struct CNN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cnn",
        abstract: "Train and evaluate image-classification CNNs on an OpenCL GPU or the CPU.",
        discussion: """
        Typical use:
          cnn train                         the guide's recipe on CIFAR-10 (downloads it if needed)
          cnn train --model cnn --epochs 5 --device opencl
          cnn eval --checkpoint runs/NAME/best.safetensors
          cnn predict --checkpoint runs/NAME/best.safetensors cat.png
          cnn filters --checkpoint runs/NAME/best.safetensors --out filters.png
          cnn tsne --checkpoint runs/NAME/best.safetensors --out tsne.png
          cnn gradcam --checkpoint runs/NAME/best.safetensors cat.png
          cnn plot runs/NAME                redraw a run's figures (PNG)
          cnn report runs/NAME [runs/OTHER] one HTML page per run, or two runs compared
          cnn devices                       what this machine can run on
          cnn models                        every model: parameters, FLOPs, recipe, measured accuracy
          cnn verify --device opencl        check every kernel against the CPU reference
          cnn tune --device opencl          tune CLBlast's GEMMs for the device (a GPU: else on first training)
        """,
        subcommands: [Train.self, Eval.self, Predict.self, Filters.self, TSNECommand.self, GradCAMCommand.self, Plot.self, Report.self, Devices.self, Verify.self, Tune.self, Models.self])
}

/// `--device`, shared by every subcommand that computes.
struct DeviceOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Compute device: auto, cpu, opencl, or opencl:P:D (platform, device; see `cnn devices`). auto takes a GPU, else an OpenCL accelerator, else the CPU backend.", valueName: "device"))
    var device: DeviceRequest?

    func make(default def: DeviceRequest = .auto) throws -> any Backend {
        let (backend, reason) = try makeBackend(device ?? def)
        note(reason)
        return backend
    }
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the compute devices SwiftCNN can use here.")

    func run() throws {
        print("cpu        Swift CPU backend (\(ProcessInfo.processInfo.activeProcessorCount) threads)  [--device cpu]")
        let inv = OpenCLDiscovery.inventory()
        if let why = inv.noPlatformReason {
            print("OpenCL:    none — \(why)")
        }
        for d in inv.devices {
            let mem = String(format: "%.1f GiB", Double(d.globalMemoryBytes) / 1_073_741_824)
            print("\(d.selector.padding(toLength: 10, withPad: " ", startingAt: 0)) \(d.name) [\(d.type.rawValue)]  \(d.platformName), driver \(d.driverVersion), \(d.computeUnits) compute units, \(mem)")
            print("           CLBlast: \(tuningStatus(d))")
        }
        for p in inv.problems { print("note: \(p)") }
        let choice = try selectDevice(.auto)
        print("\n--device auto -> \(choice.reason)")
    }
}
