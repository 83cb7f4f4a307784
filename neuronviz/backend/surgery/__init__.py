"""One rule per layer family, the masked model, physical pruning, counting."""
