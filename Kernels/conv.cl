// conv.cl — SwiftCNN OpenCL kernels (to be written)
