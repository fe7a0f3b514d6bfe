"""`voice2fa client add|list|remove` and `voice2fa keys rotate|retire|list`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import create_engine, create_sessionmaker
from webapp.oidc import clients, keys
from webapp.settings import Settings

#: cli._on_database: run a coroutine on a (migrated) database, errors as messages.
OnDatabase = Callable[[str, Callable[[str], Coroutine[Any, Any, int]]], int]
Work = Callable[[AsyncSession], Coroutine[Any, Any, int]]


def _now() -> datetime:
    return datetime.now(UTC)


def _in_session(work: Work) -> Callable[[str], Coroutine[Any, Any, int]]:
    async def run(url: str) -> int:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return run


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    )


def _listing(header: tuple[str, ...], rows: list[tuple[str, ...]], empty: str) -> int:
    """Print the rows under their header as a table, or `empty` when there are none; exit status 0."""
    print(_table([header, *rows]) if rows else empty)
    return 0


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "never"


def client_command(args: argparse.Namespace, on_database: OnDatabase) -> int:
    """Register, list or remove the sites that use the hand-off."""
    settings = Settings.from_env()

    async def add(session: AsyncSession) -> int:
        credentials = await clients.add(session, args.name, args.redirect_uri, _now())
        print(f"client_id: {credentials.client_id}")
        print(f"client_secret: {credentials.client_secret}")
        return 0

    async def listing(session: AsyncSession) -> int:
        return _listing(
            ("client_id", "name", "created (UTC)", "last used (UTC)", "redirect URIs"),
            [
                (c.id, c.name, _when(c.created_at), _when(c.last_used_at), " ".join(c.redirect_uris))
                for c in await clients.all_clients(session)
            ],
            "(no clients: add one with `voice2fa client add --name … --redirect-uri …`)",
        )

    async def remove(session: AsyncSession) -> int:
        if await clients.remove(session, args.client_id):
            print(f"removed client {args.client_id}")
            return 0
        print(f"voice2fa: no client {args.client_id!r}", file=sys.stderr)
        return 1

    if args.action == "add":  # check what was typed before touching the database
        clients.check_name(args.name)
        for uri in args.redirect_uri:
            clients.check_redirect_uri(uri)
    work = {"add": add, "list": listing, "remove": remove}[args.action]
    return on_database(settings.database_url, _in_session(work))


def keys_command(args: argparse.Namespace, on_database: OnDatabase) -> int:
    """Rotate, retire or list the keys that sign ID tokens."""
    settings = Settings.from_env()
    if args.action == "rotate" and settings.oidc_signing_key_file:
        raise ValueError("the signing key comes from OIDC_SIGNING_KEY_FILE: replace that file to rotate it")

    async def rotate(session: AsyncSession) -> int:
        before = await keys.active(session)
        kid = await keys.create(session, _now())
        print(f"new signing key {kid}")
        for old in before:
            print(f"still published until retired: {old.kid}  (voice2fa keys retire {old.kid})")
        return 0

    async def retire(session: AsyncSession) -> int:
        await keys.retire(session, args.kid, _now())
        print(f"retired {args.kid}: it is no longer in the JWKS")
        return 0

    async def listing(session: AsyncSession) -> int:
        found = await keys.every(session)
        signing = next((key.kid for key in found if key.retired_at is None), None)
        return _listing(
            ("kid", "created (UTC)", "state"),
            [
                (
                    key.kid,
                    _when(key.created_at),
                    "signing"
                    if key.kid == signing
                    else f"retired {_when(key.retired_at)}"
                    if key.retired_at
                    else "published",
                )
                for key in found
            ],
            "(no signing keys yet: the first is made when one is needed, or run `voice2fa keys rotate`)",
        )

    work = {"rotate": rotate, "retire": retire, "list": listing}[args.action]
    return on_database(settings.database_url, _in_session(work))


def add_parsers(commands: Any, on_database: OnDatabase) -> None:
    """The `client` and `keys` subcommands, on the `voice2fa` parser's subparsers."""
    client_parser = commands.add_parser("client", help="the sites that use the OpenID Connect hand-off")
    actions = client_parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a site; prints its client_id and client_secret, once")
    add.add_argument("--name", required=True, help='shown to the person: "Verify your phone number for NAME"')
    add.add_argument(
        "--redirect-uri",
        required=True,
        action="append",
        metavar="URI",
        help="https://…, or http://localhost[:port] / http://127.0.0.1[:port]; repeat for several",
    )
    actions.add_parser("list", help="the registered sites (never their secrets)")
    actions.add_parser("remove", help="remove a site, its pending requests, codes and tokens").add_argument("client_id")
    client_parser.set_defaults(handler=lambda args: client_command(args, on_database))

    keys_parser = commands.add_parser("keys", help="the keys that sign ID tokens")
    key_actions = keys_parser.add_subparsers(dest="action", required=True)
    key_actions.add_parser("rotate", help="add a new signing key; the old ones stay published until retired")
    key_actions.add_parser("retire", help="take a key out of the JWKS").add_argument("kid")
    key_actions.add_parser("list", help="every key: signing, published or retired")
    keys_parser.set_defaults(handler=lambda args: keys_command(args, on_database))
