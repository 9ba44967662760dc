"""qfix: diagnose and repair torch + bitsandbytes 4-bit (QLoRA) environments."""

__version__ = "0.1.0"
