"""Branch and bound: input splitting (low-dimensional inputs) and ReLU splitting (high-dimensional)."""
