"""vtp-lightning: pre-training visual tokenizers for generation (VTP) with PyTorch Lightning."""

__version__ = "0.1.0"
