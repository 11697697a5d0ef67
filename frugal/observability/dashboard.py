"""The dashboard page's files, shipped inside the package: nothing is fetched from elsewhere.

``static/`` holds the page (HTML, its script and style) and uPlot, a small chart library
vendored as its published minified build with its licence beside it (uplot.LICENSE). Only the
files listed here are served, so a path can never reach anything else in the package.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from frugal.errors import NotFound

PAGE = "dashboard.html"
# Served under /dashboard/static/: name -> content type.
ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uplot.min.js": "text/javascript; charset=utf-8",
    "uplot.min.css": "text/css; charset=utf-8",
    "uplot.LICENSE": "text/plain; charset=utf-8",
}
# The page runs only its own files: no inline script, nothing from another origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@cache
def _read(name: str) -> bytes:
    return resources.files("frugal.observability").joinpath("static", name).read_bytes()


def dashboard_page() -> bytes:
    """The page's HTML (read once from the package)."""
    return _read(PAGE)


def dashboard_asset(name: str) -> tuple[bytes, str]:
    """One of the page's files and its content type; NotFound for any other name."""
    content_type = ASSETS.get(name)
    if content_type is None:
        raise NotFound(f"no dashboard file {name[:60]!r}", field="path",
                       hint=f"the dashboard serves: {', '.join(ASSETS)}")  # fmt: skip
    return _read(name), content_type


def shipped_bytes() -> int:
    """What the page ships to a browser: its HTML and every script and style it loads."""
    return len(dashboard_page()) + sum(
        len(_read(name)) for name, kind in ASSETS.items() if not kind.startswith("text/plain")
    )


__all__ = [
    "ASSETS",
    "CONTENT_SECURITY_POLICY",
    "PAGE",
    "dashboard_asset",
    "dashboard_page",
    "shipped_bytes",
]
