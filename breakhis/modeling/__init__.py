"""Models and their training and use: architectures, the TensorFlow runtime and input pipeline, prediction."""
