"""Talking to a running server's admin routes from the CLI (``frugal cache``, ``frugal route``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from frugal.errors import FrugalError


def server_url(url: str | None, config_path: Path) -> str:
    if url:
        return url.rstrip("/")
    from frugal.config import load_config

    server = load_config(config_path).server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host
    return f"http://{host}:{server.port}"


def call_admin(
    method: str, url: str, path: str, key: str | None, body: dict[str, Any] | None = None
) -> Any:
    import httpx

    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.request(method, url + path, json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise FrugalError(f"cannot reach {url}: {exc}", hint="is `frugal serve` running?") from None
    if response.status_code != 200:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise FrugalError(f"{url}{path} answered {response.status_code}: {message}")
    return response.json()


URL = click.option("--url", help="Server address (default: from --config's server section).")
KEY = click.option("--key", envvar="FRUGAL_API_KEY",
                   help="An admin key when the server has auth ($FRUGAL_API_KEY).")  # fmt: skip
CONFIG = click.option("--config", "config_path", type=click.Path(path_type=Path),
                      default="frugal.yaml", show_default=True)  # fmt: skip

__all__ = ["CONFIG", "KEY", "URL", "call_admin", "server_url"]
