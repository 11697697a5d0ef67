"""frugal: serve models at the lowest cost per request, and show where the money goes."""

__version__ = "0.1.0"

__all__ = ["__version__"]
