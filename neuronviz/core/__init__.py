"""Headless core: plans, unit groups and counting. NumPy only; no TensorFlow, no Qt."""
