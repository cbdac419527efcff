// pooling.cl — SwiftCNN OpenCL kernels (to be written)
