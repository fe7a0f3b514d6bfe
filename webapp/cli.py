"""The `voice2fa` command: serve the app or the sandbox alone, the deny list, pruning, operators' passwords, hand-off clients and keys."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import secrets
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from webapp import denylist, prune, server
from webapp.db import create_engine, create_sessionmaker
from webapp.logs import MaskingFilter
from webapp.models import Attempt, DenyEntry, max_length
from webapp.oidc.commands import add_parsers as add_handoff_parsers
from webapp.passwords import GENERATED, hash_password, sandbox_password
from webapp.settings import Settings

log = logging.getLogger("webapp")


PUBLIC_SANDBOX = (
    "voice2fa: refusing to serve sandbox mode on {host}: the sandbox phone shows the codes it speaks, "
    "so it is for this machine only. Use a loopback address (127.0.0.1, ::1), give PROVIDERS their credentials, "
    "or pass --allow-public-sandbox if you really mean it."
)


def _refuse_public_sandbox(args: argparse.Namespace) -> bool:
    """Sandbox mode on an address others can reach, without the flag that allows it: say so."""
    if args.allow_public_sandbox or server.is_loopback(args.host):
        return False
    print(PUBLIC_SANDBOX.format(host=args.host), file=sys.stderr)
    return True


def serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.sandbox and _refuse_public_sandbox(args):
        return 2
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        from webapp.migrate import upgrade

        upgrade(settings.database_url)  # the embedded default is ready to use
    if args.workers > 1 and "SECRET_KEY" not in os.environ:
        # One key for every worker, or a session made by one is void at another.
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(32)
        log.warning("SECRET_KEY is not set: using a random one; sessions end when the server stops.")
    base = f"http://{args.host}:{args.port}"
    print(f"voice2fa on {base}/" + ("  (sandbox mode: no real calls)" if settings.sandbox else ""))
    if settings.sandbox and settings.admin_password_hash is None:
        # Made here, once, so that every worker accepts the same password.
        password, os.environ["ADMIN_PASSWORD_HASH"] = sandbox_password()
        print(f"operators' pages: {base}/admin/ as {settings.admin_user!r}, password {password}  ({GENERATED})")
    server.run(
        "webapp.asgi:app", settings, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level
    )
    return 0


def hash_password_command(args: argparse.Namespace) -> int:
    """Print a hash for ADMIN_PASSWORD_HASH; the password is asked for, or read from standard input."""
    if sys.stdin.isatty():
        password = getpass.getpass("Operators' password: ")
        if getpass.getpass("Again: ") != password:
            print("voice2fa: the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        print("voice2fa: use at least 12 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def sandbox(args: argparse.Namespace) -> int:
    from webapp.provider.sandbox import create_sandbox_app

    if _refuse_public_sandbox(args):
        return 2
    print(f"Verify sandbox (MessageBird and Twilio APIs) on http://{args.host}:{args.port}/  (calls: /_sandbox/)")
    server.run(create_sandbox_app(), Settings.from_env(), host=args.host, port=args.port, log_level=args.log_level)
    return 0


MAX_REASON = max_length(DenyEntry.__table__.c.reason)


def deny(args: argparse.Namespace) -> int:
    """Add, remove or list the operators' deny-list entries."""
    settings = Settings.from_env()
    entry = denylist.parse_entry(args.value) if args.action != "list" else None
    reason = " ".join((getattr(args, "reason", None) or "").split()) or None
    if reason and len(reason) > MAX_REASON:
        raise ValueError(f"--reason is at most {MAX_REASON} characters")
    return _on_database(settings.database_url, lambda url: _deny(url, args.action, entry, reason))


def _on_database(url: str, run: Callable[[str], Coroutine[Any, Any, int]]) -> int:
    """`run(url)`, on a database migrated first if it is SQLite; a database error is a message and exit 2."""
    try:
        if make_url(url).get_backend_name() == "sqlite":
            logging.getLogger("alembic").setLevel(logging.WARNING)  # no migration chatter around the answer
            from webapp.migrate import upgrade

            upgrade(url)  # the embedded default is ready to use, as for `serve`
        return asyncio.run(run(url))
    except (OSError, SQLAlchemyError) as exc:  # an unreachable or refusing database: say so, not a traceback
        print(f"voice2fa: database {make_url(url).render_as_string(hide_password=True)}: {exc}", file=sys.stderr)
        return 2


async def _deny(url: str, action: str, entry: denylist.Entry | None, reason: str | None) -> int:
    engine = create_engine(url)
    try:
        if not await _has_table(engine, DenyEntry.__tablename__):
            print("voice2fa: the database has no deny list yet: run `alembic upgrade head` first", file=sys.stderr)
            return 2
        async with create_sessionmaker(engine)() as session:
            if entry is None:
                print(_deny_table(await denylist.entries(session)))
                return 0
            described = f"{entry.kind} {entry.value}"
            if action == "add":
                added = await denylist.add(session, entry, reason=reason, by=f"cli:{_os_user()}", now=datetime.now(UTC))
                print(f"denied {described}" if added else f"already denied: {described}")
                return 0
            if await denylist.remove(session, entry):
                print(f"removed {described}")
                return 0
            print(f"not on the deny list: {described}", file=sys.stderr)
            return 1
    finally:
        await engine.dispose()


async def _has_table(engine: AsyncEngine, name: str) -> bool:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: inspect(sync).has_table(name))


def prune_log(args: argparse.Namespace) -> int:
    """Delete attempts and verifications no longer in progress older than --older-than."""
    settings = Settings.from_env()
    try:
        age = prune.parse_duration(args.older_than)
    except ValueError as exc:
        raise ValueError(f"--older-than: {exc}") from None
    if age < prune.SHORTEST and not args.force:
        raise ValueError(f"--older-than {args.older_than} is less than a day: add --force to delete a log that recent")
    return _on_database(settings.database_url, lambda url: _prune(url, age, dry_run=args.dry_run))


async def _prune(url: str, age: timedelta, *, dry_run: bool) -> int:
    now = datetime.now(UTC)
    cutoff = now - age
    engine = create_engine(url)
    try:
        if not await _has_table(engine, Attempt.__tablename__):
            print("voice2fa: the database has no attempts log yet: run `alembic upgrade head` first", file=sys.stderr)
            return 2
        sessions = create_sessionmaker(engine)
        pruned = await (prune.count(sessions, cutoff, now) if dry_run else prune.prune(sessions, cutoff, now))
    finally:
        await engine.dispose()
    what = f"{_rows(pruned.attempts, 'attempt')} and {_rows(pruned.verifications, 'verification')}"
    expired = (
        f"{_rows(pruned.authorization_requests, 'authorization request')}, "
        f"{_rows(pruned.authorization_codes, 'authorization code')}, "
        f"{_rows(pruned.access_tokens, 'access token')} and "
        f"{_rows(pruned.idempotency_keys, 'idempotency key')}"
    )
    print(
        f"{'would delete' if dry_run else 'deleted'} {what} from before {cutoff:%Y-%m-%d %H:%M} UTC, "
        f"and {expired} that have expired"
    )
    return 0


def _rows(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        return "cli"


def _deny_table(rows: list[DenyEntry]) -> str:
    if not rows:
        return "(the deny list is empty)"
    table = [("kind", "value", "reason", "added (UTC)", "by")] + [
        (row.kind, row.value, row.reason or "-", f"{row.created_at:%Y-%m-%d %H:%M:%S}", row.created_by) for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1]
        for line in table
    )


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
ALLOW_PUBLIC = "serve the sandbox on a non-loopback --host too (anyone who reaches it sees the codes it speaks)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voice2fa", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="serve the app")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--workers", type=int, default=1)
    serve_parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    serve_parser.add_argument("--allow-public-sandbox", action="store_true", help=ALLOW_PUBLIC)
    serve_parser.set_defaults(handler=serve)

    hash_parser = commands.add_parser(
        "hash-password",
        help="print a salted scrypt hash for ADMIN_PASSWORD_HASH (asks for the password, or reads stdin)",
    )
    hash_parser.set_defaults(handler=hash_password_command)

    sandbox_parser = commands.add_parser("sandbox", help="serve the Verify sandbox (MessageBird and Twilio APIs) alone")
    sandbox_parser.add_argument("--host", default="127.0.0.1")
    sandbox_parser.add_argument("--port", type=int, default=8001)
    sandbox_parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    sandbox_parser.add_argument("--allow-public-sandbox", action="store_true", help=ALLOW_PUBLIC)
    sandbox_parser.set_defaults(handler=sandbox)

    deny_parser = commands.add_parser("deny", help="the operators' deny list: numbers, prefixes, IP networks")
    actions = deny_parser.add_subparsers(dest="action", required=True)
    add_parser = actions.add_parser("add", help="deny a number (+31612345678), a prefix (+3197*) or an IP network")
    add_parser.add_argument(
        "value", metavar="VALUE", help="+31612345678, 0031612345678, +3197*, 203.0.113.7, 2001:db8::/32"
    )
    add_parser.add_argument("--reason", help="why, for the other operators")
    actions.add_parser("remove", help="take an entry off the deny list").add_argument("value", metavar="VALUE")
    actions.add_parser("list", help="show the deny list")
    deny_parser.set_defaults(handler=deny)

    prune_parser = commands.add_parser(
        "prune",
        help=f"delete attempts and finished verifications older than an age (default {prune.RETENTION}), "
        "and what the hand-off has that expired",
        description=(
            "Delete attempts, and verifications no longer in progress, older than --older-than "
            f"(default {prune.RETENTION}), a few thousand rows a transaction so that the app keeps "
            "writing meanwhile. The attempts log holds phone numbers and IP addresses, which are "
            "personal data: keep them no longer than you need them, and run this daily (cron, a "
            "systemd timer). The hand-off's authorization requests, codes and access tokens go as "
            "soon as they have expired."
        ),
    )
    prune_parser.add_argument(
        "--older-than",
        default=prune.RETENTION,
        metavar="AGE",
        help=f"a whole number and a unit: 2w, 90d, 12h, 30m (m is minutes); default {prune.RETENTION}",
    )
    prune_parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    prune_parser.add_argument("--force", action="store_true", help="allow an AGE under one day")
    prune_parser.set_defaults(handler=prune_log)

    add_handoff_parsers(commands, _on_database)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # `serve` installs its own, masked the same way
        handler.addFilter(MaskingFilter())
    try:
        run: Callable[[argparse.Namespace], int] = args.handler
        return run(args)
    except ValueError as exc:  # bad settings, a bad deny-list value, age or redirect URI: say which, not a traceback
        print(f"voice2fa: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
