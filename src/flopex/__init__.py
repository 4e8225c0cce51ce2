"""flopex: a verifiable compute exchange for generative AI."""

__version__ = "0.1.0"
