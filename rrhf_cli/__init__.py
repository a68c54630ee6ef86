"""rrhf: align language models by ranking sampled responses (RRHF), one CLI stage at a time."""

__version__ = "0.1.0"
