"""Per-layer views: each subscribes to the State and draws one aspect of one layer."""
