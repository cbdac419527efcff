// See include/cmpi.h.
#include "cmpi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Open MPI's handles are pointers to these exported globals (mpi.h: MPI_COMM_WORLD is
// ((MPI_Comm)&ompi_mpi_comm_world), and so on); the functions take them as opaque pointers.
typedef void *handle;
static int (*p_init_thread)(int *, char ***, int, int *);
static int (*p_comm_rank)(handle, int *);
static int (*p_comm_size)(handle, int *);
static int (*p_allreduce)(const void *, void *, int, handle, handle, handle);
static int (*p_bcast)(void *, int, handle, int, handle);
static int (*p_barrier)(handle);
static int (*p_abort)(handle, int);
static int (*p_finalize)(void);
static int (*p_error_string)(int, char *, int *);
static int (*p_comm_set_errhandler)(handle, handle);
static handle comm_world, dt_float, dt_double, dt_int64, dt_byte, op_sum, op_max, op_min, errors_return;
static void *in_place;
static int rank_ = 0, size_ = 1, level_ = 0;

static void *sym(void *lib, const char *name, char *error, size_t error_size, int *failed) {
    void *p = dlsym(lib, name);
    if (!p && !*failed) {
        snprintf(error, error_size, "the MPI library has no symbol %s (this build expects Open MPI)", name);
        *failed = 1;
    }
    return p;
}

int cmpi_init(char *error, size_t error_size) {
    const char *names[3] = {getenv("SWIFTCNN_LIBMPI"), "libmpi.so.40", "libmpi.so"};
    void *lib = NULL;
    const char *why = "";
    for (int i = 0; i < 3 && !lib; i++) {
        if (!names[i] || !*names[i]) continue;
        // RTLD_GLOBAL: Open MPI's plugins (mca components) resolve libmpi's symbols through the global scope.
        lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
        if (!lib) why = dlerror();
    }
    if (!lib) {
        snprintf(error, error_size, "could not load the MPI library (libmpi.so.40): %s. Install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev) "
                 "or set SWIFTCNN_LIBMPI to the path of libmpi.so", why ? why : "");
        return 1;
    }
    int failed = 0;
#define LOAD(var, name) *(void **)(&var) = sym(lib, name, error, error_size, &failed)
    LOAD(p_init_thread, "MPI_Init_thread");
    LOAD(p_comm_rank, "MPI_Comm_rank");
    LOAD(p_comm_size, "MPI_Comm_size");
    LOAD(p_allreduce, "MPI_Allreduce");
    LOAD(p_bcast, "MPI_Bcast");
    LOAD(p_barrier, "MPI_Barrier");
    LOAD(p_abort, "MPI_Abort");
    LOAD(p_finalize, "MPI_Finalize");
    LOAD(p_error_string, "MPI_Error_string");
    LOAD(p_comm_set_errhandler, "MPI_Comm_set_errhandler");
    comm_world = sym(lib, "ompi_mpi_comm_world", error, error_size, &failed);
    dt_float = sym(lib, "ompi_mpi_float", error, error_size, &failed);
    dt_double = sym(lib, "ompi_mpi_double", error, error_size, &failed);
    dt_int64 = sym(lib, "ompi_mpi_int64_t", error, error_size, &failed);
    dt_byte = sym(lib, "ompi_mpi_byte", error, error_size, &failed);
    op_sum = sym(lib, "ompi_mpi_op_sum", error, error_size, &failed);
    op_max = sym(lib, "ompi_mpi_op_max", error, error_size, &failed);
    op_min = sym(lib, "ompi_mpi_op_min", error, error_size, &failed);
    errors_return = sym(lib, "ompi_mpi_errors_return", error, error_size, &failed);
#undef LOAD
    if (failed) return 1;
    // Open MPI: MPI_IN_PLACE is ((void *) 1).
    in_place = (void *)1;
    // MPI_THREAD_SERIALIZED (2 in Open MPI): one thread at a time makes MPI calls.
    int rc = p_init_thread(NULL, NULL, 2, &level_);
    if (rc != 0) {
        snprintf(error, error_size, "MPI_Init_thread failed (error %d)", rc);
        return 1;
    }
    // Errors come back as codes (reported with the rank), instead of Open MPI's default abort.
    p_comm_set_errhandler(comm_world, errors_return);
    p_comm_rank(comm_world, &rank_);
    p_comm_size(comm_world, &size_);
    return 0;
}

int cmpi_rank(void) { return rank_; }
int cmpi_size(void) { return size_; }
int cmpi_thread_level(void) { return level_; }

static handle op_of(int op) { return op == 1 ? op_max : op == 2 ? op_min : op_sum; }

int cmpi_allreduce_float(float *values, int count, int op) {
    return p_allreduce(in_place, values, count, dt_float, op_of(op), comm_world);
}
int cmpi_allreduce_double(double *values, int count, int op) {
    return p_allreduce(in_place, values, count, dt_double, op_of(op), comm_world);
}
int cmpi_allreduce_int64(int64_t *values, int count, int op) {
    return p_allreduce(in_place, values, count, dt_int64, op_of(op), comm_world);
}
int cmpi_bcast(void *bytes, int count, int root) { return p_bcast(bytes, count, dt_byte, root, comm_world); }
int cmpi_barrier(void) { return p_barrier(comm_world); }
void cmpi_abort(int code) {
    if (p_abort) p_abort(comm_world, code);
    _Exit(code);
}
int cmpi_finalize(void) { return p_finalize ? p_finalize() : 0; }
void cmpi_error_string(int code, char *out, size_t out_size) {
    char buf[512];
    int len = 0;
    if (p_error_string && p_error_string(code, buf, &len) == 0) {
        snprintf(out, out_size, "%.*s", len, buf);
    } else {
        snprintf(out, out_size, "MPI error %d", code);
    }
}
