"""Tidings: a self-hostable multichannel shared inbox."""

__version__ = "0.1.0"
