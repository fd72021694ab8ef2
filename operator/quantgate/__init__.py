"""quantgate: gate promotion of quantized LLMs on lm-eval evidence."""

__version__ = "0.1.0"
