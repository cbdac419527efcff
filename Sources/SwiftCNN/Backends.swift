import CNNCore
import CPUBackend
import OpenCLBackend

// Where the backends meet: the only module that depends on both the CPU and the OpenCL backend
// and constructs one of them from a device request.

/// Creates the backend that `request` names (`--device auto|cpu|opencl|opencl:P:D`), with the
/// reason for the choice (`selectDevice` decides; see there).
public func makeBackend(_ request: DeviceRequest) throws -> (backend: any Backend, reason: String) {
    switch try selectDevice(request) {
    case .cpu(let reason):
        return (CPUBackend(), reason)
    case .opencl(let info, let reason):
        return (try OpenCLBackend(device: info), reason)
    }
}

/// `makeBackend` for the text form `auto|cpu|opencl|opencl:P:D` (a bad one: an error listing the forms).
public func makeBackend(_ spec: String) throws -> (backend: any Backend, reason: String) {
    try makeBackend(try DeviceRequest.parse(spec))
}
