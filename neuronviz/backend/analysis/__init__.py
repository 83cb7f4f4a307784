"""Statistics, gradients, sensitivity and unit importance."""
