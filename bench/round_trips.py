"""Database round trips of one start (POST /verify, the full allowed path), counted by SQLAlchemy events.

    .venv/bin/python bench/round_trips.py [--db sqlite,postgresql] [--starts 20] [--show]

The app runs in-process (sandbox mode: the provider is not the database's
business), limits raised; each start is a fresh number from a fresh client.
Counted per start, on every engine: statements sent (`before_cursor_execute`),
transactions begun, commits, rollbacks, and pool checkouts (on PostgreSQL each
one is a `pool_pre_ping`, one more round trip; on SQLite none). On PostgreSQL
asyncpg sends a BEGIN ahead of a transaction's first statement: a round trip of
its own. On SQLite what costs is the trip to aiosqlite's thread, and its
wake-ups: those are counted too (calls of `aiosqlite.Connection._execute`,
which every aiosqlite call goes through). `--show` prints the statements of the
last start.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import aiosqlite.core
import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp import migrate  # noqa: E402
from webapp.app import create_app  # noqa: E402
from webapp.settings import Settings  # noqa: E402

RAISED = "1000000/minute"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.statements: list[str] = []
        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "begin", lambda _conn: self.counts.update(["begin"]))
        event.listen(Engine, "commit", lambda _conn: self.counts.update(["commit"]))
        event.listen(Engine, "rollback", lambda _conn: self.counts.update(["rollback"]))
        event.listen(Pool, "checkout", lambda *_args: self.counts.update(["checkout"]))
        queue = aiosqlite.core.Connection._execute
        tally = self

        async def counted(connection: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            tally.counts["thread trip"] += 1
            return await queue(connection, fn, *args, **kwargs)

        aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.counts["statement"] += 1
        self.statements.append(" ".join(statement.split())[:110])

    def reset(self) -> None:
        self.counts.clear()
        self.statements.clear()


async def measure(database_url: str, starts: int, tally: Tally) -> tuple[Counter[str], list[str]]:
    settings = Settings(
        database_url=database_url,
        limit_start_per_ip=RAISED,
        limit_start_per_number=RAISED,
        limit_calls_global=RAISED,
        limit_calls_per_country=RAISED,
    )
    app = create_app(settings)
    total: Counter[str] = Counter()
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.5", 40000))
        for i in range(starts + 1):
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                tally.reset()
                response = await client.post(
                    "/verify", data={"phone": f"+3162{i:07d}", "country": "NL"}, headers={"HX-Request": "true"}
                )
                assert response.status_code == 200, response.text[:300]
                if i:  # the first start warms the pool and the caches up
                    total.update(tally.counts)
    return total, tally.statements


async def _postgres(statement: str) -> None:
    connection = await asyncpg.connect(f"{POSTGRES}/test")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def run(kind: str, starts: int, tally: Tally, show: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp}/round_trips.db"
            name = None
        else:
            name = f"bench_rt_{secrets.token_hex(4)}"
            asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        try:
            migrate.upgrade(url)
            total, statements = asyncio.run(measure(url, starts, tally))
        finally:
            if name:
                asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    per = {key: total[key] / starts for key in ("statement", "begin", "commit", "rollback", "checkout", "thread trip")}
    trips = per["statement"] + per["commit"] + per["rollback"]
    if kind == "postgresql":
        trips += per["begin"] + per["checkout"]  # asyncpg's BEGIN, and the pre-ping of each checkout
    else:
        trips = per["thread trip"]
    print(f"{kind}: {trips:.1f} round trips per start — " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
    if show:
        for statement in statements:
            print("   ", statement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args()
    tally = Tally()
    for kind in args.db.split(","):
        run(kind, args.starts, tally, args.show)


if __name__ == "__main__":
    main()
