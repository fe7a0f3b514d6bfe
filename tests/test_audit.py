"""`.ci/audit.py`: real pip-audit against a vulnerability service on loopback that answers as OSV does.

The audit must tell three things apart: clean, known vulnerabilities, and
"could not audit" (pip-audit alone reports the last as "No known
vulnerabilities found").
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import free_port

AUDIT = Path(__file__).parent.parent / ".ci" / "audit.py"
HASH = "--hash=sha256:" + "0" * 64  # the lock's form; pip-audit reads hashes, never checks them here

#: What the fake service knows: (package, version) -> OSV vulnerability ids.
KNOWN = {("jinja2", "3.1.4"): ["GHSA-q2x7-8rv6-6q7h"]}


class _Osv(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        package = query["package"]["name"]
        ids = KNOWN.get((package, query["version"]), [])
        vulns = [
            {
                "id": vuln,
                "summary": "sandbox breakout",
                "affected": [
                    {
                        "package": {"name": package, "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.5"}]}],
                    }
                ],
            }
            for vuln in ids
        ]
        body = json.dumps({"vulns": vulns} if vulns else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def osv() -> Iterator[str]:
    """The fake OSV query endpoint's URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Osv)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    server.shutdown()
    server.server_close()


def audit(tmp_path: Path, pins: list[str], *options: str) -> subprocess.CompletedProcess[str]:
    lock = tmp_path / "requirements.lock"
    lock.write_text("".join(f"{pin} {HASH}\n" for pin in pins))
    return subprocess.run(
        [sys.executable, str(AUDIT), str(lock), *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # its own cache, no proxy


def test_a_known_vulnerability_fails_with_its_id(tmp_path: Path, osv: str) -> None:
    done = audit(tmp_path, ["jinja2==3.1.4", "markupsafe==3.0.4"], "-s", "osv", "--osv-url", osv)
    assert done.returncode == 1, done.stderr
    assert "jinja2 3.1.4: GHSA-q2x7-8rv6-6q7h (fixed in: 3.1.5)" in done.stdout
    assert "2 of 2 locked packages audited" in done.stdout


def test_a_clean_lock_passes(tmp_path: Path, osv: str) -> None:
    done = audit(tmp_path, ["jinja2==3.1.6", "markupsafe==3.0.4"], "-s", "osv", "--osv-url", osv)
    assert done.returncode == 0, done.stderr
    assert "2 of 2 locked packages audited, 0 known vulnerabilities" in done.stdout


def test_an_unreachable_service_is_not_a_pass(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/query"  # nothing listens there
    done = audit(tmp_path, ["jinja2==3.1.4"], "-s", "osv", "--osv-url", url)
    assert done.returncode == 2
    assert "NOT RUN" in done.stderr


def test_a_missing_lock_file_is_not_a_pass(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(AUDIT), str(tmp_path / "nothing.lock")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
