"""hdsl: a specification language and verifier for neural networks."""

__version__ = "0.1.0"
