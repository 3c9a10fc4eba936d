"""acgs_trainer: constitutional data, LoRA + DP-SGD fine-tuning and digest-checked artifacts."""

__version__ = "0.1.0"
