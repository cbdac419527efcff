import CNNCore
import COpenCL
import CCLBlast

/// OpenCL and CLBlast status codes as names, so every thrown error says what happened
/// ("clEnqueueNDRangeKernel(im2col) failed: CL_OUT_OF_RESOURCES (-5)") instead of a bare number.
package enum CLStatus {
    /// The OpenCL 1.2 / 3.0 error names plus the ICD loader's CL_PLATFORM_NOT_FOUND_KHR.
    package static func name(_ code: cl_int) -> String {
        switch code {
        case 0: return "CL_SUCCESS"
        case -1: return "CL_DEVICE_NOT_FOUND"
        case -2: return "CL_DEVICE_NOT_AVAILABLE"
        case -3: return "CL_COMPILER_NOT_AVAILABLE"
        case -4: return "CL_MEM_OBJECT_ALLOCATION_FAILURE"
        case -5: return "CL_OUT_OF_RESOURCES"
        case -6: return "CL_OUT_OF_HOST_MEMORY"
        case -7: return "CL_PROFILING_INFO_NOT_AVAILABLE"
        case -8: return "CL_MEM_COPY_OVERLAP"
        case -9: return "CL_IMAGE_FORMAT_MISMATCH"
        case -10: return "CL_IMAGE_FORMAT_NOT_SUPPORTED"
        case -11: return "CL_BUILD_PROGRAM_FAILURE"
        case -12: return "CL_MAP_FAILURE"
        case -13: return "CL_MISALIGNED_SUB_BUFFER_OFFSET"
        case -14: return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST"
        case -15: return "CL_COMPILE_PROGRAM_FAILURE"
        case -16: return "CL_LINKER_NOT_AVAILABLE"
        case -17: return "CL_LINK_PROGRAM_FAILURE"
        case -18: return "CL_DEVICE_PARTITION_FAILED"
        case -19: return "CL_KERNEL_ARG_INFO_NOT_AVAILABLE"
        case -30: return "CL_INVALID_VALUE"
        case -31: return "CL_INVALID_DEVICE_TYPE"
        case -32: return "CL_INVALID_PLATFORM"
        case -33: return "CL_INVALID_DEVICE"
        case -34: return "CL_INVALID_CONTEXT"
        case -35: return "CL_INVALID_QUEUE_PROPERTIES"
        case -36: return "CL_INVALID_COMMAND_QUEUE"
        case -37: return "CL_INVALID_HOST_PTR"
        case -38: return "CL_INVALID_MEM_OBJECT"
        case -39: return "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR"
        case -40: return "CL_INVALID_IMAGE_SIZE"
        case -41: return "CL_INVALID_SAMPLER"
        case -42: return "CL_INVALID_BINARY"
        case -43: return "CL_INVALID_BUILD_OPTIONS"
        case -44: return "CL_INVALID_PROGRAM"
        case -45: return "CL_INVALID_PROGRAM_EXECUTABLE"
        case -46: return "CL_INVALID_KERNEL_NAME"
        case -47: return "CL_INVALID_KERNEL_DEFINITION"
        case -48: return "CL_INVALID_KERNEL"
        case -49: return "CL_INVALID_ARG_INDEX"
        case -50: return "CL_INVALID_ARG_VALUE"
        case -51: return "CL_INVALID_ARG_SIZE"
        case -52: return "CL_INVALID_KERNEL_ARGS"
        case -53: return "CL_INVALID_WORK_DIMENSION"
        case -54: return "CL_INVALID_WORK_GROUP_SIZE"
        case -55: return "CL_INVALID_WORK_ITEM_SIZE"
        case -56: return "CL_INVALID_GLOBAL_OFFSET"
        case -57: return "CL_INVALID_EVENT_WAIT_LIST"
        case -58: return "CL_INVALID_EVENT"
        case -59: return "CL_INVALID_OPERATION"
        case -60: return "CL_INVALID_GL_OBJECT"
        case -61: return "CL_INVALID_BUFFER_SIZE"
        case -62: return "CL_INVALID_MIP_LEVEL"
        case -63: return "CL_INVALID_GLOBAL_WORK_SIZE"
        case -64: return "CL_INVALID_PROPERTY"
        case -65: return "CL_INVALID_IMAGE_DESCRIPTOR"
        case -66: return "CL_INVALID_COMPILER_OPTIONS"
        case -67: return "CL_INVALID_LINKER_OPTIONS"
        case -68: return "CL_INVALID_DEVICE_PARTITION_COUNT"
        case -69: return "CL_INVALID_PIPE_SIZE"
        case -70: return "CL_INVALID_DEVICE_QUEUE"
        case -1001: return "CL_PLATFORM_NOT_FOUND_KHR"
        default: return "unknown OpenCL error"
        }
    }

    /// "CL_OUT_OF_RESOURCES (-5)", with a hint for the codes a user can do something about. `call`
    /// is the failed call ("clFinish", "clEnqueueReadBuffer(...)").
    package static func describe(_ code: cl_int, call: String = "") -> String {
        let base = "\(name(code)) (\(code))"
        switch code {
        case -5 where waitsForEarlierWork(call):
            // NVIDIA's driver reports a kernel that faulted (e.g. an out-of-bounds access) as
            // CL_OUT_OF_RESOURCES on the next call that waits for the queue, not at its launch.
            return base + " while waiting for earlier work — a kernel enqueued before this call most likely faulted "
                + "(NVIDIA reports an out-of-bounds access this way); this is not a shortage of memory, and a smaller "
                + "batch size will not help: run `cnn verify --device opencl` and scripts/oclgrind-check.sh to find the kernel"
        case -4, -5, -6:
            return base + " — the device ran out of memory or resources; try a smaller batch size"
        case -1001:
            return base + " — no OpenCL platform is installed (check the ICD files in /etc/OpenCL/vendors or OCL_ICD_VENDORS)"
        default:
            return base
        }
    }

    /// Calls that wait for the work enqueued before them: where a late kernel fault surfaces.
    static func waitsForEarlierWork(_ call: String) -> Bool {
        ["clFinish", "clWaitForEvents", "clEnqueueReadBuffer", "clEnqueueWriteBuffer", "clEnqueueMapBuffer"].contains {
            call.hasPrefix($0)
        }
    }

    /// CLBlast's status codes (CLBlastStatusCode): the OpenCL ones plus its own.
    package static func clblastName(_ code: Int32) -> String {
        switch code {
        case -1024: return "CLBlastNotImplemented"
        case -1022: return "CLBlastInvalidMatrixA"
        case -1021: return "CLBlastInvalidMatrixB"
        case -1020: return "CLBlastInvalidMatrixC"
        case -1019: return "CLBlastInvalidVectorX"
        case -1018: return "CLBlastInvalidVectorY"
        case -1017: return "CLBlastInvalidDimension (M, N and K must be larger than zero)"
        case -1016: return "CLBlastInvalidLeadDimA (lda too small)"
        case -1015: return "CLBlastInvalidLeadDimB (ldb too small)"
        case -1014: return "CLBlastInvalidLeadDimC (ldc too small)"
        case -1013: return "CLBlastInvalidIncrementX"
        case -1012: return "CLBlastInvalidIncrementY"
        case -1011: return "CLBlastInsufficientMemoryA (A's buffer is too small)"
        case -1010: return "CLBlastInsufficientMemoryB (B's buffer is too small)"
        case -1009: return "CLBlastInsufficientMemoryC (C's buffer is too small)"
        case -1008: return "CLBlastInsufficientMemoryX"
        case -1007: return "CLBlastInsufficientMemoryY"
        case -2050: return "CLBlastInsufficientMemoryTemp (temporary buffer too small)"
        case -2049: return "CLBlastInvalidBatchCount (batch count must be positive)"
        case -2048: return "CLBlastInvalidOverrideKernel"
        case -2047: return "CLBlastMissingOverrideParameter"
        case -2046: return "CLBlastInvalidLocalMemUsage (not enough local memory on this device)"
        case -2045: return "CLBlastNoHalfPrecision"
        case -2044: return "CLBlastNoDoublePrecision"
        case -2043: return "CLBlastInvalidVectorScalar"
        case -2042: return "CLBlastInsufficientMemoryScalar"
        case -2041: return "CLBlastDatabaseError (no tuning entry for this device)"
        case -2040: return "CLBlastUnknownError"
        case -2039: return "CLBlastUnexpectedError"
        default:
            // Codes above -1000 are OpenCL's own.
            return code > -1000 ? name(code) : "unknown CLBlast status"
        }
    }
}

/// Throws `CNNError.device` unless `status` is CL_SUCCESS. `what` names the call and its subject.
@inline(__always)
func clCheck(_ status: cl_int, _ what: @autoclosure () -> String) throws {
    if status != CL_SUCCESS {
        let call = what()
        throw CNNError.device("OpenCL: \(call) failed: \(CLStatus.describe(status, call: call))")
    }
}

/// Throws `CNNError.device` unless a CLBlast routine returned CLBlastSuccess.
@inline(__always)
func clblastCheck(_ status: CLBlastStatusCode, _ what: @autoclosure () -> String) throws {
    let code = Int32(status.rawValue)
    if code != 0 {
        throw CNNError.device("CLBlast: \(what()) failed: \(CLStatus.clblastName(code)) (\(code))")
    }
}
