"""What an output is and how it is scored: evaluation and the masked preview."""
