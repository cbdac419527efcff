#ifndef SWIFTCNN_COPENCL_SHIM_H
#define SWIFTCNN_COPENCL_SHIM_H
// OpenCL 1.2 API surface: the widest set every vendor driver (NVIDIA, AMD, Intel, PoCL) ships.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#endif
