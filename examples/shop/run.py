"""`make example`: voice2fa (sandbox mode) and the example shop side by side, on loopback.

voice2fa serves http://127.0.0.1:8000 on a fresh SQLite file, the shop
http://localhost:8002 (another host name, so the two are different sites to
the browser, as they would be in production). The shop is registered as a
client first (`voice2fa client add`), and its credentials passed to it.
Ctrl-C stops both.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"example: {url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    sys.exit(f"example: {url} did not answer within 30 s")


def main() -> int:
    voice2fa_port = int(os.environ.get("VOICE2FA_PORT", "8000"))
    shop_port = int(os.environ.get("SHOP_PORT", "8002"))
    voice2fa_url, shop_url = f"http://127.0.0.1:{voice2fa_port}", f"http://localhost:{shop_port}"
    data = Path(tempfile.mkdtemp(prefix="voice2fa-example-"))
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{data / 'voice2fa.db'}"}
    env.pop("MESSAGEBIRD_API_KEY", None)  # sandbox mode: no real calls, the codes on the page
    added = subprocess.run(
        [str(BIN / "voice2fa"), "client", "add", "--name", "Example shop", "--redirect-uri", shop_url + "/callback"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    credentials = dict(re.findall(r"^(client_id|client_secret): (\S+)$", added, re.MULTILINE))
    servers = [
        subprocess.Popen([str(BIN / "voice2fa"), "serve", "--port", str(voice2fa_port)], env=env),
        subprocess.Popen(
            [
                str(BIN / "uvicorn"),
                "--factory",
                "examples.shop.app:from_env",
                "--host",
                "127.0.0.1",
                "--port",
                str(shop_port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={
                **env,
                "VOICE2FA_URL": voice2fa_url,
                "SHOP_URL": shop_url,
                "SHOP_CLIENT_ID": credentials["client_id"],
                "SHOP_CLIENT_SECRET": credentials["client_secret"],
            },
        ),
    ]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped by a signal: stop both servers too
    try:
        _wait(voice2fa_url + "/healthz", servers[0])
        _wait(shop_url + "/", servers[1])
        print(
            f"\n  The shop:  {shop_url}/\n  voice2fa:  {voice2fa_url}/  (operators: {voice2fa_url}/admin/)\n"
            f"  Data:      {data}\n  Ctrl-C stops both.\n",
            flush=True,
        )
        while all(server.poll() is None for server in servers):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
