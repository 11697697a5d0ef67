"""Serving: the ASGI app, protocol codecs, admission, the batcher, and start-up assembly."""

from frugal.serving.app import FrugalApp, create_app
from frugal.serving.assembly import Assembly, assemble, build_engine, start_engine
from frugal.serving.batcher import Batcher, Submission
from frugal.serving.engine import Answer, Endpoint, Engine
from frugal.serving.recorder import Finished, Recorder
from frugal.serving.server import serve
from frugal.serving.workers import parse_workers, resolve_workers

__all__ = [
    "Answer",
    "Assembly",
    "Batcher",
    "Endpoint",
    "Engine",
    "Finished",
    "FrugalApp",
    "Recorder",
    "Submission",
    "assemble",
    "build_engine",
    "create_app",
    "parse_workers",
    "resolve_workers",
    "serve",
    "start_engine",
]
