print("cnn-bench")
