"""fashionbench: benchmark and profile Fashion-MNIST classifiers in PyTorch and Keras/TensorFlow."""
