"""Training: on-the-fly data and degradations, losses, the training loop, checkpoints."""
