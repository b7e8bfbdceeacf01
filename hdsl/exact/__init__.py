"""Exact reasoning about piecewise-linear networks: explicit layers, Z3 encoding, float32 slack."""
