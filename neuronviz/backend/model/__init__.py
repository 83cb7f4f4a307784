"""Graph capture and flattening, tracing, loading and saving, data."""
