"""The HTTP server of `voice2fa serve`: uvicorn on uvloop and httptools, with edges.

httptools (llhttp) has no limit on a request's headers, and uvicorn adds none
on top of it: one 200 MB header was read whole, slowly (each chunk is appended
to the value so far), while every other request waited. Nor does uvicorn time
out a connection that sends its request slowly, or never finishes it. So the
protocol here counts the head's bytes and fields as they arrive and answers
431 past `MAX_HEADER_BYTES` / `MAX_HEADERS`, and answers 408 to a request whose
headers take longer than `HEADERS_TIMEOUT` or whose whole request (body
included) takes longer than `REQUEST_TIMEOUT`. `SHUTDOWN_TIMEOUT` bounds how
long a stopping server waits for requests in flight.

A reverse proxy in front still belongs (README, "The server's edges"); these
caps are what holds when something reaches the app without one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from functools import partial
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from webapp.logs import serve_log_config
from webapp.settings import Settings


@dataclass(frozen=True, slots=True)
class Edges:
    """What one request may send, and how slowly (picklable: each worker gets a copy)."""

    max_header_bytes: int
    max_headers: int
    headers_timeout: float
    request_timeout: float

    @classmethod
    def of(cls, settings: Settings) -> Edges:
        return cls(settings.max_header_bytes, settings.max_headers, settings.headers_timeout, settings.request_timeout)


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over its caps."""


def _plain(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n" + message
    )


TOO_LARGE = _plain(b"431 Request Header Fields Too Large", b"Request header fields too large.")
TOO_SLOW = _plain(b"408 Request Timeout", b"The request took too long to arrive.")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with caps on the head and deadlines on receiving a request."""

    def __init__(self, *args: Any, edges: Edges, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.edges = edges
        self._reading_head = True
        self._heads_done = 0
        self._head_bytes = 0  # bytes of whole chunks read inside one head
        self._head_size = 0  # request line and header fields, as parsed
        self._header_count = 0
        self._started = self.loop.time()
        self._deadline: asyncio.TimerHandle | None = None

    # -- the caps ----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        heads_done = self._heads_done
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(TOO_LARGE)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:  # as uvicorn's own protocol does
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._reading_head and self._heads_done == heads_done:
            # A header can span many chunks, and httptools hands it over only
            # once it ends: count the chunks, or it grows without bound first.
            self._head_bytes += len(data)
            if self._head_bytes > self.edges.max_header_bytes:
                self._refuse(TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a later request on a kept-alive connection
            self._started = self.loop.time()
            self._arm(self.edges.headers_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.edges.max_headers:
            raise _HeadTooLarge
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.edges.max_header_bytes:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._heads_done += 1
        self._head_bytes = self._head_size = self._header_count = 0
        self._arm(self._started + self.edges.request_timeout - self.loop.time())
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head = True
        super().on_message_complete()

    def _refuse(self, response: bytes) -> None:
        """Answer `response` unless a response to this request has begun, and close."""
        self._disarm()
        client = f"{self.client[0]}:{self.client[1]} " if self.client else ""
        self.logger.warning("%sRefused: %s", client, response.split(b"\r\n", 1)[0][9:].decode())
        if self._reading_head or self.cycle is None or not self.cycle.response_started:
            self.transport.write(response)
        self.transport.close()

    # -- the deadlines -----------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn declares it: narrower than asyncio.Protocol
        super().connection_made(transport)
        self._started = self.loop.time()
        self._arm(self.edges.headers_timeout)  # a connection that sends nothing is cut off too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(max(seconds, 0.0), self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._refuse(TOO_SLOW)


def run(app: Any, settings: Settings, *, host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    """Serve `app` (an ASGI app, or its import string for several workers) until SIGINT or SIGTERM."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        # A partial rather than a class made on the fly: with --workers, uvicorn
        # pickles its config for each worker process.
        http=partial(BoundedHttpToolsProtocol, edges=Edges.of(settings)),  # type: ignore[arg-type]  # typed as a class or a name; a partial of one works alike
        timeout_graceful_shutdown=settings.shutdown_timeout,
        # The app decides who the client is (TRUSTED_PROXIES); uvicorn must not
        # rewrite the client address from X-Forwarded-For on its own.
        proxy_headers=False,
        server_header=False,
        # A line per request costs as much as a refusal does; the attempts table is the log (ACCESS_LOG).
        access_log=settings.access_log,
        log_level=log_level,
        log_config=serve_log_config(log_level),
    )


def is_loopback(host: str) -> bool:
    """Whether every address `host` stands for is on this machine only (127.0.0.0/8, ::1)."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found)
