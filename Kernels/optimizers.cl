// optimizers.cl — SwiftCNN OpenCL kernels (to be written)
