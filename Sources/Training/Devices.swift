import CNNCore
import CPUBackend
import OpenCLBackend

/// Creates the backend that `--device auto|cpu|opencl|opencl:P:D` names, with the reason for the choice.
public func makeBackend(_ spec: String) throws -> (backend: any Backend, reason: String) {
    switch try selectDevice(spec) {
    case .cpu(let reason):
        return (CPUBackend(), reason)
    case .opencl(let info, let reason):
        return (try OpenCLBackend(device: info), reason)
    }
}
