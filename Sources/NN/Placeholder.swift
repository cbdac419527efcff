import CNNCore
