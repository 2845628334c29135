"""cnnbench: a config-driven experiment runner for the classic convolutional networks."""

__version__ = "0.1.0"
