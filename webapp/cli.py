"""The `voice2fa` command: serve the app, or the sandbox alone."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys

import uvicorn
from sqlalchemy.engine import make_url

from webapp.settings import Settings

log = logging.getLogger("webapp")


def serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        from webapp.migrate import upgrade

        upgrade(settings.database_url)  # the embedded default is ready to use
    if args.workers > 1 and "SECRET_KEY" not in os.environ:
        # One key for every worker, or a session made by one is void at another.
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(32)
        log.warning("SECRET_KEY is not set: using a random one; sessions end when the server stops.")
    print(f"voice2fa on http://{args.host}:{args.port}/" + ("  (sandbox mode: no real calls)" if settings.sandbox else ""))
    uvicorn.run(
        "webapp.asgi:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        # The app decides who the client is (TRUSTED_PROXIES); uvicorn must not
        # rewrite the client address from X-Forwarded-For on its own.
        proxy_headers=False,
        server_header=False,
        log_level=args.log_level,
    )
    return 0


def sandbox(args: argparse.Namespace) -> int:
    from webapp.provider.sandbox import create_sandbox_app

    print(f"MessageBird Verify sandbox on http://{args.host}:{args.port}/  (calls: /_sandbox/)")
    uvicorn.run(create_sandbox_app(), host=args.host, port=args.port, proxy_headers=False, log_level=args.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voice2fa", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="serve the app")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--workers", type=int, default=1)
    serve_parser.add_argument("--log-level", default="info")
    serve_parser.set_defaults(handler=serve)

    sandbox_parser = commands.add_parser("sandbox", help="serve the MessageBird Verify sandbox alone")
    sandbox_parser.add_argument("--host", default="127.0.0.1")
    sandbox_parser.add_argument("--port", type=int, default=8001)
    sandbox_parser.add_argument("--log-level", default="info")
    sandbox_parser.set_defaults(handler=sandbox)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except ValueError as exc:  # bad settings: say which, not a traceback
        print(f"voice2fa: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
