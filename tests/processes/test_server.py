"""The server's edges, against a real `voice2fa serve` process over raw sockets.

Caps on a request's head (its size and number of fields), deadlines on
receiving a request, and a bounded graceful shutdown. The server runs with
short deadlines here so that the tests wait seconds, not minutes.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.processes.support import Running

#: Long enough that a cut-off connection is told apart from one left open.
PATIENCE = 30.0


class Served:
    """A running `voice2fa serve`, seen over raw sockets."""

    def __init__(self, running: Running) -> None:
        self.base, self.port, self.process = running.url, running.port, running.process

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(PATIENCE)
        return sock

    def rss_kib(self) -> int:
        """The server process's resident memory."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def healthy(self) -> bool:
        return httpx.get(self.base + "/healthz", timeout=PATIENCE).status_code == 200


@pytest.fixture
def served(serve: Callable[..., Running]) -> Served:
    """The server with deadlines of 2 s for the headers and 4 s for a whole request."""
    return Served(serve(HEADERS_TIMEOUT="2", REQUEST_TIMEOUT="4"))


def head(*headers: bytes, path: bytes = b"/healthz") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send what the server takes; it may close the connection before the end."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (b"" after a reset)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def status_line(received: bytes) -> bytes:
    return received.split(b"\r\n", 1)[0]


def test_a_request_one_header_over_the_count_gets_431(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(head(*(b"X-N%d: 1" % i for i in range(100))))  # with Host: 101
        assert status_line(answer(sock)) == b"HTTP/1.1 431 Request Header Fields Too Large"


def test_a_request_at_the_header_count_is_served(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(head(*(b"X-N%d: 1" % i for i in range(98)), b"Connection: close"))  # with Host: 100
        assert status_line(answer(sock)) == b"HTTP/1.1 200 OK"


def test_a_hundred_thousand_headers_are_refused(served: Served) -> None:
    with served.connect() as sock:
        send_all(sock, head(*(b"X-N%d: 1" % i for i in range(100_000))))
        received = answer(sock)
    # The server answers 431 and closes; with the client still sending, the
    # kernel may turn that close into a reset that discards the answer.
    assert received == b"" or status_line(received) == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert served.healthy()


def test_a_header_over_the_size_gets_431(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(head(b"X-Big: " + b"a" * 17_000))
        assert status_line(answer(sock)) == b"HTTP/1.1 431 Request Header Fields Too Large"


def test_headers_under_the_size_are_served(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(head(b"X-Big: " + b"a" * 15_000, b"Connection: close"))
        assert status_line(answer(sock)) == b"HTTP/1.1 200 OK"


def test_a_long_body_sent_with_its_head_is_not_taken_for_headers(served: Served) -> None:
    body = b"country=NL&phone=" + b"1" * 30_000
    request = (
        b"POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    with served.connect() as sock:
        sock.sendall(request)
        assert status_line(answer(sock)) == b"HTTP/1.1 422 Unprocessable Entity"


def test_a_huge_header_is_cut_off_without_the_server_growing_and_others_are_served(served: Served) -> None:
    before = served.rss_kib()
    honest: list[bool] = []

    def meanwhile() -> None:
        honest.extend(served.healthy() for _ in range(5))

    with served.connect() as sock:
        others = threading.Thread(target=meanwhile)
        others.start()
        chunk = b"a" * (1 << 20)
        send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        try:
            for _ in range(200):  # 200 MB, unless the server closes first
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = answer(sock)
        others.join(PATIENCE)
    assert received == b"" or status_line(received) == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert honest == [True] * 5
    assert served.rss_kib() - before < 20 * 1024


def test_headers_that_do_not_end_are_cut_off_and_others_are_served(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert served.healthy()
        assert status_line(answer(sock)) == b"HTTP/1.1 408 Request Timeout"


def test_headers_sent_a_byte_at_a_time_are_cut_off(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(0.5)
        cut_off = False
        for _ in range(int(PATIENCE / 0.5)):  # a header byte every half second: each one within the keep-alive
            try:
                sock.sendall(b"X")
                if sock.recv(65536).startswith(b"HTTP/1.1 408"):
                    cut_off = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                cut_off = True
                break
        assert cut_off


def test_a_connection_that_sends_nothing_is_closed(served: Served) -> None:
    with served.connect() as sock:
        received = answer(sock)
    assert received == b"" or status_line(received) == b"HTTP/1.1 408 Request Timeout"


def test_a_body_that_does_not_end_is_cut_off_and_others_are_served(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(
            b"POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\ncountry=NL&phone=06"
        )
        assert served.healthy()
        assert status_line(answer(sock)) == b"HTTP/1.1 408 Request Timeout"
    assert served.healthy()


def test_sigterm_ends_the_server_within_its_shutdown_timeout_while_a_body_is_held_open(
    serve: Callable[..., Running],
) -> None:
    # The request deadline is far away: only the shutdown timeout can end this.
    served = Served(serve(REQUEST_TIMEOUT="3600", HEADERS_TIMEOUT="3600", SHUTDOWN_TIMEOUT="2"))
    with served.connect() as sock:
        sock.sendall(
            b"POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\ncountry=NL&phone=06"
        )
        assert served.healthy()  # the held request has been read up to its body by now
        served.process.send_signal(signal.SIGTERM)
        served.process.wait(timeout=PATIENCE)  # uvicorn re-raises the signal once it has shut down
