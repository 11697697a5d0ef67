"""Serving: the ASGI app, protocol codecs, admission and the batcher."""

from frugal.serving.app import FrugalApp, build_engine, create_app
from frugal.serving.batcher import Batcher, Submission
from frugal.serving.engine import Answer, Engine
from frugal.serving.server import serve

__all__ = [
    "Answer",
    "Batcher",
    "Engine",
    "FrugalApp",
    "Submission",
    "build_engine",
    "create_app",
    "serve",
]
