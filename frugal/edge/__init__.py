"""The edge runner a bundle ships (runner.py: numpy and onnxruntime only), importable here too."""

from frugal.edge.runner import (
    FORMAT,
    MANIFEST,
    BundleError,
    EdgeAnswer,
    EdgeCascade,
    EdgeModel,
    ServerError,
    WordPiece,
    file_sha256,
)

__all__ = [
    "FORMAT",
    "MANIFEST",
    "BundleError",
    "EdgeAnswer",
    "EdgeCascade",
    "EdgeModel",
    "ServerError",
    "WordPiece",
    "file_sha256",
]
