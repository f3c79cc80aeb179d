"""KNTC case service: one national case file per matter, its workflow, deadlines and scope."""

__version__ = "0.1.0"
