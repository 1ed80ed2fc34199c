"""Training: the PyTorch dataset, the training loop, temperature scaling and fitting the gate."""
