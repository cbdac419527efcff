// The umbrella module: `import SwiftCNN` gives a package everything it needs to define a model
// and train it on any device.
@_exported import CNNCore
@_exported import CPUBackend
@_exported import OpenCLBackend
@_exported import NN
@_exported import Datasets
@_exported import Training
@_exported import Verification
