"""How fast the operators' pages are on a big attempts log (a benchmark, not a test).

    .venv/bin/python bench/admin_pages.py [--rows 1000000] [--small 10000]
        [--db sqlite|postgresql|both] [--repeat 30] [--keep]

For each database and each size it makes a fresh schema with `webapp.migrate`
(a SQLite file under bench/.data, or a PostgreSQL database `bench_<hex>_<size>`
dropped afterwards unless --keep), fills `attempts` with seeded, realistic rows
(six months with a daily and weekly rhythm, ~n/5 distinct NL/BE/DE/GB numbers,
three abusive numbers, an abusive +3718 prefix range, an abusive
198.51.100.0/24), runs ANALYZE, and times:

- the app's own queries (`reports.page`, `report_summary.summary`) on a session from
  `webapp.db`: one warm-up, then --repeat runs, p50/p95 in ms;
- the whole HTTP page (auth, every query of the handler, template rendering)
  through httpx + ASGITransport: one warm-up, then max(5, --repeat/3) runs;
- CSV export throughput of a 7-day filter: `reports.stream` plus the row
  formatting of admin.attempts_csv, and the HTTP download.

"now" is the newest row. It prints a markdown table and writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from starlette.datastructures import Secret

from webapp import migrate, report_summary, reports
from webapp.admin import export
from webapp.app import create_app
from webapp.db import create_engine, create_sessionmaker
from webapp.models import Attempt
from webapp.passwords import hash_password
from webapp.reports import AttemptFilter, Cursor
from webapp.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_file import write_section  # noqa: E402  (bench/ is not a package)

ROOT = Path(__file__).resolve().parent.parent

COLUMNS = (
    "created_at",
    "kind",
    "number",
    "raw_input",
    "region",
    "ip",
    "channel",
    "outcome",
    "verification_id",
    "provider_ref",
    "provider_latency_ms",
)
START, DAYS = datetime(2026, 5, 29, tzinfo=UTC), 182
HOURS = (
    0.1,
    0.06,
    0.05,
    0.05,
    0.08,
    0.2,
    0.5,
    0.9,
    1.2,
    1.4,
    1.5,
    1.5,
    1.4,
    1.4,
    1.4,
    1.3,
    1.3,
    1.3,
    1.4,
    1.5,
    1.4,
    1.1,
    0.7,
    0.3,
)
WEEKDAYS = (1.0, 1.05, 1.05, 1.0, 0.95, 0.6, 0.55)
REGIONS = {"NL": 45, "BE": 15, "DE": 20, "GB": 12, "FR": 3, "PL": 3, "US": 2}
ABUSIVE_NUMBER, BAD_NET, BAD_IP, PREFIX = "+447911000001", "198.51.100.0/24", "198.51.100.23", "+3718"
ABUSIVE_NUMBERS = ((ABUSIVE_NUMBER, "GB"), ("+4915112340000", "DE"), ("+37061200000", "LT"))
# (kind, outcome) → weight. Normal traffic ends ~40 % sent, ~30 % verified.
NORMAL = {
    ("start", "sent"): 36,
    ("start", "invalid_number"): 4.5,
    ("start", "blocked_pending"): 1.8,
    ("start", "blocked_number"): 1.2,
    ("start", "blocked_ip"): 0.9,
    ("start", "blocked_country"): 1,
    ("start", "blocked_number_type"): 0.8,
    ("start", "blocked_denylist"): 0.3,
    ("start", "blocked_global"): 0.1,
    ("start", "blocked_circuit"): 0.2,
    ("start", "provider_error"): 0.25,
    ("start", "call_failed"): 0.15,
    ("start", "limiter_unavailable"): 0.02,
    ("start", "bad_request"): 0.2,
    ("check", "verified"): 31,
    ("check", "wrong_code"): 6.5,
    ("check", "invalid_code"): 2,
    ("check", "expired"): 1.5,
    ("check", "attempts_exhausted"): 0.5,
    ("check", "no_verification"): 0.4,
    ("check", "already_verified"): 0.3,
    ("resend", "sent"): 3.5,
    ("resend", "resend_too_soon"): 1,
}
ABUSE = {
    ("start", "sent"): 30,
    ("start", "blocked_number"): 15,
    ("start", "blocked_ip"): 15,
    ("start", "blocked_denylist"): 10,
    ("start", "blocked_pending"): 8,
    ("start", "blocked_circuit"): 5,
    ("start", "blocked_global"): 2,
    ("check", "wrong_code"): 8,
    ("check", "expired"): 4,
    ("check", "verified"): 1.5,
    ("resend", "sent"): 1.5,
}
CALLED = {"sent", "verified", "wrong_code", "expired", "attempts_exhausted", "provider_error", "call_failed"}


def _number(rnd: random.Random, region: str) -> tuple[str, str]:
    """A valid mobile number of `region` (E.164), and the region."""
    digits = lambda k: f"{rnd.randrange(10**k):0{k}d}"  # noqa: E731
    start = {
        "NL": "+316" + rnd.choice("12345"),
        "BE": "+3247",
        "GB": "+447" + rnd.choice("4589"),
        "DE": "+491" + rnd.choice(("51", "52", "57", "60", "62", "70", "72", "76", "79")),
        "FR": "+336" + rnd.choice("1245678"),
        "PL": "+485",
        "US": "+1" + rnd.choice(("212", "415", "646")) + rnd.choice("2345689"),
    }[region]
    return start + digits({"GB": 13, "DE": 14}.get(region, 12) - len(start)), region


def _ip(rnd: random.Random) -> str:
    if rnd.random() < 0.12:
        return str(ipaddress.IPv6Address(0x2A02A440 << 96 | rnd.getrandbits(64) << 32 | rnd.getrandbits(16)))
    first = rnd.choice((31, 37, 46, 62, 77, 80, 82, 84, 86, 89, 94, 145, 178, 185, 212, 217))
    return f"{first}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"


def generate(n: int, seed: int) -> list[tuple]:
    """`n` attempts in COLUMNS order, oldest first (created_at aware UTC)."""
    rnd = random.Random(seed)
    start, span = START.timestamp(), DAYS * 86400
    people = [_number(rnd, r) for r in rnd.choices(list(REGIONS), list(REGIONS.values()), k=max(n // 5, 20))]
    homes = [_ip(rnd) for _ in range(max(n // 6, 20))]
    day_weights = [WEEKDAYS[(START + timedelta(d)).weekday()] * (0.7 + 0.6 * d / DAYS) for d in range(DAYS)]  # growing
    bad_ip = lambda: BAD_IP if rnd.random() < 0.25 else f"198.51.100.{rnd.randrange(1, 255)}"  # noqa: E731

    def person() -> tuple[tuple[str, str], str]:
        i = int(len(people) * rnd.random() ** 1.5)  # some people come back more often
        return people[i], homes[i % len(homes)] if rnd.random() < 0.85 else rnd.choice(homes)

    def rhythmic(count: int) -> list[float]:
        days, hours = rnd.choices(range(DAYS), day_weights, k=count), rnd.choices(range(24), HOURS, k=count)
        return [start + d * 86400 + h * 3600 + rnd.random() * 3600 for d, h in zip(days, hours)]

    def recent(days: int):  # bots: flat, day and night, over the last `days` days
        return lambda count: [start + span - rnd.random() * days * 86400 for _ in range(count)]

    segments = [  # share of rows, outcome mix, times, (number, region) and ip
        (0.012, ABUSE, recent(DAYS), lambda: (rnd.choice(ABUSIVE_NUMBERS), rnd.choice(homes))),
        (
            0.04,
            ABUSE,
            recent(30),
            lambda: (
                (PREFIX + f"{rnd.randrange(10**7):07d}", "LV"),
                bad_ip() if rnd.random() < 0.5 else rnd.choice(homes),
            ),
        ),
        (0.03, ABUSE, recent(60), lambda: (_number(rnd, "NL"), bad_ip())),
    ]
    rows: list[tuple] = []
    for share, mix, times, who in [*segments, (None, NORMAL, rhythmic, person)]:
        count = round(n * share) if share else n - len(rows)
        for (kind, outcome), at in zip(rnd.choices(list(mix), list(mix.values()), k=count), times(count)):
            (number, region), ip = who()
            raw = None
            if outcome == "invalid_number":
                number, raw, region = (
                    None,
                    rnd.choice(("06", "+31 6", "0044 7", "12")) + str(rnd.randrange(10**5)),
                    None,
                )
            called = outcome in CALLED
            rows.append(
                (
                    at,
                    kind,
                    number,
                    raw,
                    region,
                    ip,
                    "tts",
                    outcome,
                    None,
                    f"{rnd.getrandbits(96):024x}" if called else None,
                    int(rnd.lognormvariate(5.6, 0.45)) if called else None,
                )
            )
    rows.sort(key=lambda row: row[0])
    return [(datetime.fromtimestamp(r[0], UTC),) + r[1:] for r in rows]


async def fresh_database(kind: str, label: str, args: argparse.Namespace):
    """The URL of an empty database at head, and a coroutine function that removes it."""
    name = f"bench_{uuid.uuid4().hex[:8]}_{label}"
    if kind == "sqlite":
        path = ROOT / "bench" / ".data" / f"{name}.db"
        path.parent.mkdir(exist_ok=True)
        url = f"sqlite+aiosqlite:///{path}"

        async def drop() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        server = await asyncpg.connect(args.postgres)
        await server.execute(f"CREATE DATABASE {name}")
        url = args.postgres.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + "/" + name

        async def drop() -> None:
            await server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await server.close()

    migrate.upgrade(url)
    return url, drop


async def load(kind: str, url: str, rows: list[tuple]) -> float:
    """Insert `rows`, then ANALYZE; the seconds it took."""
    began = time.perf_counter()
    if kind == "sqlite":
        db = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("BEGIN")
        insert = f"INSERT INTO attempts ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        for i in range(0, len(rows), 100_000):  # created_at as SQLAlchemy stores it: naive UTC text
            db.executemany(insert, [(r[0].strftime("%Y-%m-%d %H:%M:%S.%f"),) + r[1:] for r in rows[i : i + 100_000]])
        db.execute("COMMIT")
        db.execute("ANALYZE")
        db.close()
    else:
        db = await asyncpg.connect(url.replace("+asyncpg", ""))
        await db.copy_records_to_table("attempts", records=rows, columns=COLUMNS)
        await db.execute("VACUUM (ANALYZE) attempts")  # what autovacuum does after a bulk insert
        await db.close()
    return time.perf_counter() - began


async def samples(call, repeat: int) -> list[float]:
    """Milliseconds of `repeat` calls after one warm-up."""
    await call()
    found = []
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        found.append((time.perf_counter() - began) * 1000)
    return found


def p95(values: list[float]) -> float:
    return sorted(values)[math.ceil(0.95 * len(values)) - 1]


async def export_csv(sessions, where: AttemptFilter) -> int:
    """Stream and format every row as admin.attempts_csv does (`export.rows`), without writing it anywhere."""
    size = 0
    async for chunk in export.rows(sessions, where):
        size += chunk.count("\n")
    return size - 1  # the header


def cases(now: datetime, cursor: Cursor, normal: str) -> list[tuple]:
    """(name, under the goal, the reports call, the HTTP path that makes it) for each measurement."""
    day, week = now - timedelta(hours=24), now - timedelta(days=7)
    since, until = (
        (now - timedelta(days=10)).replace(second=0, microsecond=0),
        (now - timedelta(days=3)).replace(second=0, microsecond=0),
    )
    net, ip, minute = ipaddress.ip_network(BAD_NET), ipaddress.ip_network(BAD_IP), "%Y-%m-%dT%H:%M"
    return [
        ("first page (24 h)", True, lambda s: reports.page(s, AttemptFilter(since=day)), "/admin/"),
        (
            "number page, abusive (200)",
            True,
            lambda s: reports.page(s, AttemptFilter(number=ABUSIVE_NUMBER), size=200),
            "/admin/numbers/" + quote(ABUSIVE_NUMBER),
        ),
        (
            "number page, normal (200)",
            True,
            lambda s: reports.page(s, AttemptFilter(number=normal), size=200),
            "/admin/numbers/" + quote(normal),
        ),
        (
            "sent+verified, 7-day range",
            True,
            lambda s: reports.page(s, AttemptFilter(outcomes=("verified", "sent"), since=since, until=until)),
            f"/admin/?outcome=verified&outcome=sent&since={since:{minute}}&until={until:{minute}}",
        ),
        (
            "IP page, exact (200)",
            True,
            lambda s: reports.page(s, AttemptFilter(network=ip), size=200),
            "/admin/ips/" + BAD_IP,
        ),
        (
            "IP /24, 24 h",
            True,
            lambda s: reports.page(s, AttemptFilter(network=net, since=day)),
            "/admin/?ip=" + quote(BAD_NET),
        ),
        (
            "IP /24, all time",
            True,
            lambda s: reports.page(s, AttemptFilter(network=net)),
            f"/admin/?ip={quote(BAD_NET)}&period=all",
        ),
        (
            "prefix +3718*, 24 h",
            True,
            lambda s: reports.page(s, AttemptFilter(number_prefix=PREFIX, since=day)),
            "/admin/?number=" + quote(PREFIX + "*"),
        ),
        ("summary (24 h)", True, lambda s: report_summary.summary(s, AttemptFilter(since=day), now), "/admin/summary"),
        (
            "summary (7 d) [info]",
            False,
            lambda s: report_summary.summary(s, AttemptFilter(since=week), now),
            "/admin/summary?period=7d",
        ),
        (
            "deep keyset page, all time",
            True,
            lambda s: reports.page(s, AttemptFilter(), before=cursor),
            f"/admin/?period=all&before={cursor}",
        ),
    ]


async def measure(url: str, n: int, args: argparse.Namespace) -> dict:
    """Every case on the database at `url`, through the reports functions and through HTTP."""
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        now = await session.scalar(select(func.max(Attempt.created_at)))
        newest_first = select(Attempt.created_at, Attempt.id).order_by(Attempt.created_at.desc(), Attempt.id.desc())
        cursor = Cursor(*(await session.execute(newest_first.offset(min(50_000, n // 2)).limit(1))).one())
        normal = await session.scalar(
            select(Attempt.number)
            .where(Attempt.region == "NL")
            .group_by(Attempt.number)
            .having(func.count() == 5)
            .order_by(Attempt.number)
            .limit(1)
        )  # a typical person
    results: dict = {"cases": {}, "load": os.getloadavg()[0]}
    password = uuid.uuid4().hex
    app = create_app(Settings(database_url=url, admin_password_hash=Secret(hash_password(password))), clock=lambda: now)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://bench",
            auth=("admin", password),
            timeout=600,
        ) as client,
    ):

        async def get(path: str) -> httpx.Response:
            response = await client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
            return response

        for name, goal, call, path in cases(now, cursor, normal):

            async def run(call=call):
                async with sessions() as session:
                    return await call(session)

            shown = await run()
            query = await samples(run, args.repeat)
            web = await samples(lambda path=path: get(path), max(5, args.repeat // 3)) if path else None
            found = results["cases"][name] = {
                "goal": goal,
                "rows": shown.total if isinstance(shown, report_summary.Summary) else len(shown.rows),
                "p50": statistics.median(query),
                "p95": p95(query),
                "http_p50": web and statistics.median(web),
                "http_p95": web and p95(web),
            }
            print(
                f"  {name}: {found['p50']:.1f} / {found['p95']:.1f} ms"
                + (f", HTTP {found['http_p50']:.1f} / {found['http_p95']:.1f} ms" if web else ""),
                flush=True,
            )
        week = AttemptFilter(since=now - timedelta(days=7))
        await export_csv(sessions, week)
        began = time.perf_counter()
        count = sum([await export_csv(sessions, week) for _ in range(3)]) / 3
        rate = count / ((time.perf_counter() - began) / 3)
        began = time.perf_counter()
        lines = (await get("/admin/attempts.csv?period=7d")).text.count("\n") - 1
        results["csv"] = {"rows": count, "rate": rate, "http_rate": lines / (time.perf_counter() - began)}
    results["load"] = max(results["load"], os.getloadavg()[0])
    await engine.dispose()
    return results


def size(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" if n >= 1000 else str(n)


def machine(pg_version: str | None) -> str:
    cpu = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    )
    ram = int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {ram:.1f} GiB RAM, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
        + (f", PostgreSQL {pg_version}" if pg_version else "")
    )


def table(title: str, found: dict, small: int, big: int) -> str:
    s, b, ms = size(small), size(big), lambda v: "—" if v is None else f"{v:.1f}"
    lines = [
        f"### {title}",
        "",
        f"Load (insert + ANALYZE): {s} {found[small]['load_s']:.1f} s, {b} {found[big]['load_s']:.1f} s. "
        f"Highest 1-minute load average seen while measuring: {max(found[n]['load'] for n in found):.1f}. Times in ms.",
        "",
        f"| case | rows at {b} | {s} p50 | {s} p95 | {b} p50 | {b} p95 | {b}÷{s} p50 | HTTP {s} p50 | HTTP {b} p50 "
        f"| HTTP {b} p95 | p95 < 50 ms | ≤ 2× |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|:-:|",
    ]
    for name, one in found[big]["cases"].items():
        other, ratio = found[small]["cases"][name], one["p50"] / found[small]["cases"][name]["p50"]
        fast = one["p95"] < 50 and (one["http_p95"] is None or one["http_p95"] < 50)
        verdict = (
            f"| {'yes' if fast else '**no**'} | {'yes' if ratio <= 2 else '**no**'} |"
            if one["goal"]
            else "| info | info |"
        )
        lines.append(
            f"| {name} | {one['rows']:,} | {ms(other['p50'])} | {ms(other['p95'])} | {ms(one['p50'])} | {ms(one['p95'])} "
            f"| {ratio:.1f}× | {ms(other['http_p50'])} | {ms(one['http_p50'])} | {ms(one['http_p95'])} {verdict}"
        )
    csv_small, csv_big = found[small]["csv"], found[big]["csv"]
    lines += [
        "",
        f"CSV export, last 7 days: {s} {csv_small['rows']:,.0f} rows at {csv_small['rate']:,.0f} rows/s; "
        f"{b} {csv_big['rows']:,.0f} rows at {csv_big['rate']:,.0f} rows/s (`reports.stream` + csv formatting), "
        f"{csv_big['http_rate']:,.0f} rows/s through HTTP.",
        "",
    ]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the databases (their URLs are printed)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="the server to use")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    logging.getLogger("webapp").setLevel(logging.ERROR)  # no "sandbox mode" warning per app
    sections, pg_version = [], None
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        found: dict = {}
        for n in (args.small, args.rows):
            rows = generate(n, args.seed)
            url, drop = await fresh_database(kind, size(n).lower(), args)
            load_s = await load(kind, url, rows)
            del rows
            print(f"{kind} {size(n)}: loaded in {load_s:.1f} s ({url})", flush=True)
            if kind == "postgresql":
                server = await asyncpg.connect(args.postgres)
                pg_version = (await server.fetchval("SHOW server_version")).split()[0]
                await server.close()
            try:
                found[n] = {"load_s": load_s, **await measure(url, n, args)}
            finally:
                if not args.keep:
                    await drop()
        sections.append(table({"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind], found, args.small, args.rows))
    report = "\n".join(
        [
            "## The operators' pages (bench/admin_pages.py)",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `bench/admin_pages.py --rows {args.rows} --small {args.small} "
            f"--db {args.db} --repeat {args.repeat}`.",
            "",
            f"Machine: {machine(pg_version)}.",
            "",
            f"Goal (the issue): every page p95 under 50 ms at {size(args.rows)} rows, and page time at {size(args.rows)} rows "
            f"at most 2× the time at {size(args.small)}. Query columns time the app's own `reports` call on an `AsyncSession` "
            "(one warm-up, then --repeat runs); HTTP columns time the whole request (auth, every query of the handler, "
            "template rendering) through httpx + ASGITransport. “p95 < 50 ms” needs both query and HTTP p95 under 50 ms; "
            "“≤ 2×” compares query p50s. Both sizes span the same six months, so a 24-hour window holds 100× more rows "
            "at the big size. “now” is the newest row. The deep keyset page starts 50,000 rows (at most half the table) "
            "into the all-time list. Rows marked info are outside the goal.",
            "",
            *sections,
            "### Re-running",
            "",
            "    .venv/bin/python bench/admin_pages.py [--rows 1000000] [--small 10000] [--db sqlite|postgresql|both] [--repeat 30]",
            "",
            "SQLite files go to bench/.data/ (ignored by git); PostgreSQL databases `bench_<hex>_<size>` are made on "
            "--postgres and dropped at the end unless --keep. Other work on the machine moves p95: check the load average above.",
            "",
        ]
    )
    print("\n" + report)
    write_section(Path(args.out), "admin-pages", report)


if __name__ == "__main__":
    asyncio.run(main())
