"""Training on the CPU: the corpus builder, the training configuration and loop."""
