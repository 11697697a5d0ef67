"""HTTP/1.1 by hand over a socket, for what no polite client does: sending a request slowly,
half of it, or with headers too large, and reading whatever the server answers."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

READ_TIMEOUT_S = 30.0  # a socket read that gets nothing in this long fails the test


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=READ_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_head(path: str, body_length: int, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {body_length}\r\n{extra}\r\n").encode()  # fmt: skip


def read_reply(sock: socket.socket) -> RawReply:
    """One response (status, headers, body by content-length); raises on EOF before it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a reply; got {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawReply(status, headers, body[:length])


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (a read returns EOF or a reset)."""
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


__all__ = ["RawReply", "closed_by_server", "connect", "read_reply", "request_head"]
