// A small wrapper of the few MPI calls that distributed training uses, loaded at run time.
//
// libmpi is opened with dlopen only when `cnn train --distributed` asks for it, so the binaries
// have no link dependency on MPI: plain `cnn train` starts on a machine without an MPI runtime.
// The handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are Open MPI's exported globals, looked up
// with dlsym, so this wrapper targets Open MPI (Debian: openmpi-bin, libopenmpi3), the library the
// mpirun that starts the job belongs to.
#ifndef SWIFTCNN_CMPI_H
#define SWIFTCNN_CMPI_H

#include <stddef.h>
#include <stdint.h>

/// Loads libmpi ($SWIFTCNN_LIBMPI, else libmpi.so.40, else libmpi.so) and calls MPI_Init_thread
/// (MPI_THREAD_SERIALIZED). Returns 0 on success; otherwise writes a message into `error`.
int cmpi_init(char *error, size_t error_size);
/// Rank and size in MPI_COMM_WORLD (after cmpi_init).
int cmpi_rank(void);
int cmpi_size(void);
/// The thread level MPI provided.
int cmpi_thread_level(void);
/// In-place allreduce over MPI_COMM_WORLD. op: 0 sum, 1 max, 2 min. Returns the MPI error code (0: success).
int cmpi_allreduce_float(float *values, int count, int op);
int cmpi_allreduce_double(double *values, int count, int op);
int cmpi_allreduce_int64(int64_t *values, int count, int op);
/// Broadcast of bytes from `root`.
int cmpi_bcast(void *bytes, int count, int root);
int cmpi_barrier(void);
/// MPI_Abort(MPI_COMM_WORLD, code): ends every rank of the job.
void cmpi_abort(int code);
int cmpi_finalize(void);
/// Text of an MPI error code.
void cmpi_error_string(int code, char *out, size_t out_size);

#endif
