"""Getting accuracy back: fine-tuning, schedules, unstructured sparsity."""
