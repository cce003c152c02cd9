"""drivseg: semantic segmentation of driving scenes with PyTorch Lightning."""

__version__ = "0.1.0"
