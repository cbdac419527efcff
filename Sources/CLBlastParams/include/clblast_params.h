#ifndef SWIFTCNN_CLBLAST_PARAMS_H
#define SWIFTCNN_CLBLAST_PARAMS_H
// The one CLBlast 1.5.3 call that its C API lacks: RetrieveParameters (C++ only). The tuner needs
// it to know a device's default GEMM parameters (to record them and to restore them).
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// The single-precision tuning parameters CLBlast uses for `kernel` ("Xgemm", "XgemmDirect",
// "GemmRoutine", ...) on `device` (a cl_device_id), the overrides included. Writes up to
// `capacity` names (NUL-terminated, `name_length` bytes each, truncated if longer) and values and
// sets `*count` to the number of parameters. Returns CLBlast's status code (0 = success).
int swiftcnn_clblast_retrieve_parameters(void *device, const char *kernel, size_t capacity, size_t name_length,
                                         char *names, size_t *values, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
