"""Throughput and tail latency of voice2fa over real HTTP, as ratios to a bare
Starlette hello measured in the same run (a benchmark, not a test: `make bench`).

    .venv/bin/python bench/http_load.py [--duration 10] [--repeat 3] [--connections 32]
        [--db sqlite,postgresql] [--only start,refused,...] [--no-write]

Everything runs on loopback, each its own process: the reference (bench/hello.py on
uvicorn with uvloop + httptools), a fast MessageBird stub (bench/stub.py, likewise),
and voice2fa as `voice2fa serve` (one process) with production-like settings: a
"real" key pointed at the stub, limits raised so that they are not what is
measured (except in the refusal scenario, which keeps the default per-IP limit).
wrk drives each scenario (bench/lua/: a fresh number per request and no cookie for
starts; for checks, session cookies of verifications made straight in the database).

Scenarios: the page (GET /), a start on the full allowed path (parse, policy, limits,
verification reserved, attempts row committed, a Verify create at the stub, the code
fragment rendered), a wrong code, the right code, refused starts from one flooding
address while honest starts come from other loopback addresses (127.0.0.x), and a
soak of 100,000 mixed requests for the worker's memory. Each is repeated (median of
--repeat runs); after each run the attempts log is counted against the requests wrk
saw answered. It prints one table and writes it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import itsdangerous
from sqlalchemy import func, insert, inspect, select, text

from webapp import migrate
from webapp.db import create_engine
from webapp.models import Attempt, Verification

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_file import write_section  # noqa: E402  (bench/ is not a package)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
DATA = BENCH / ".data"
BIN = Path(sys.executable).parent
SECRET_KEY = "bench-" + "k" * 40
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
RIGHT_CODE = "123456"  # bench/stub.py verifies this token
WRONG_CODE = "000000"
MAX_ATTEMPTS = 5
#: Wrong codes per verification: one fewer than the attempts allowed, so it stays pending.
WRONG_USES = MAX_ATTEMPTS - 1
RAISED = "1000000/minute"

GOALS = {
    "page": ("ratio ≥ 0.35", lambda r: r.ratio >= 0.35),
    "start": ("ratio ≥ 0.12, p99 < 25 ms", lambda r: r.ratio >= 0.12 and r.p99_ms < 25),
    "confirm_wrong": ("ratio ≥ 0.10", lambda r: r.ratio >= 0.10),
    "confirm_right": ("ratio ≥ 0.10", lambda r: r.ratio >= 0.10),
    "refused": (
        "ratio ≥ 0.4; honest p99 < 50 ms, all succeed",
        lambda r: r.ratio >= 0.4 and r.honest_p99_ms is not None and r.honest_p99_ms < 50 and r.honest_failed == 0,
    ),
    "soak": ("RSS < 150 MB, not growing", lambda r: r.rss_mb < 150 and (r.rss_growth_mb or 0) <= 2),
}


# -- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def start_server(name: str, command: list[str], port: int, env: dict[str, str], up_path: str = "/") -> Server:
    log = DATA / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(server.url + up_path, timeout=1)
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    stop(server)
    raise RuntimeError(f"{name} did not come up: {log.read_text()[-2000:]}")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def uvicorn_app(name: str, target: str) -> Server:
    port = free_port()
    command = [
        str(BIN / "uvicorn"),
        target,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return start_server(name, command, port, {**os.environ, "PYTHONPATH": str(ROOT)})


def voice2fa(database_url: str, stub: Server, **limits: str) -> Server:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MESSAGEBIRD_", "LIMIT_", "DATABASE_", "RATELIMIT_", "VERIFY_"))
    }
    env.update(
        MESSAGEBIRD_API_KEY="bench-live-key",
        MESSAGEBIRD_BASE_URL=stub.url,
        DATABASE_URL=database_url,
        RATELIMIT_STORAGE_URL="memory://",
        SECRET_KEY=SECRET_KEY,
        VERIFY_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        LIMIT_START_PER_IP=RAISED,
        LIMIT_CHECK_PER_IP=RAISED,
        LIMIT_CALLS_GLOBAL=RAISED,
        LIMIT_CALLS_PER_COUNTRY=RAISED,
    )
    env.update({f"LIMIT_{key.upper()}": value for key, value in limits.items()})
    command = [str(BIN / "voice2fa"), "serve", "--port", str(port), "--log-level", "warning"]
    return start_server("voice2fa", command, port, env, up_path="/healthz")


# -- databases ------------------------------------------------------------------------


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, migrated database for one server's life; its SQLAlchemy URL."""
    name = f"bench_http_{secrets.token_hex(4)}"
    if kind == "sqlite":
        path = DATA / f"{name}.db"
        url = f"sqlite+aiosqlite:///{path}"
        migrate.upgrade(url)
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _postgres(statement: str) -> None:
    connection = await asyncpg.connect(f"{POSTGRES}/test")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _count_attempts(url: str) -> int:
    """Requests the attempts log accounts for: rows, or the sum of a flood row's count."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("attempts")})
            counted = func.sum(func.coalesce(text("count"), 1)) if "count" in columns else func.count()
            return int(await connection.scalar(select(counted).select_from(Attempt)) or 0)
    finally:
        await engine.dispose()


def count_attempts(url: str) -> int:
    return asyncio.run(_count_attempts(url))


def session_cookie(verification_id: str) -> str:
    """The session cookie voice2fa would set for a verification in progress (starlette's format)."""
    data = base64.b64encode(json.dumps({"verification": verification_id}).encode())
    return itsdangerous.TimestampSigner(SECRET_KEY).sign(data).decode()


async def _pending_verifications(url: str, n: int, first_number: int) -> list[str]:
    now = datetime.now(UTC)
    rows = [
        {
            "id": secrets.token_urlsafe(16),
            "number": f"+3164{first_number + i:07d}",
            "country": "NL",
            "channel": "tts",
            "provider_ref": secrets.token_hex(16),
            "status": "pending",
            "code_attempts": 0,
            "calls": 1,
            "ip": "192.0.2.1",
            "created_at": now,
            "last_call_at": now,
            "expires_at": now + timedelta(hours=1),
        }
        for i in range(n)
    ]
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for chunk in range(0, n, 5000):
                await connection.execute(insert(Verification), rows[chunk : chunk + 5000])
    finally:
        await engine.dispose()
    return [session_cookie(row["id"]) for row in rows]


def cookies_file(url: str, n: int, first_number: int) -> Path:
    """A file of n session cookies, each for its own pending verification made in the database."""
    path = DATA / f"cookies_{secrets.token_hex(4)}.txt"
    path.write_text("\n".join(asyncio.run(_pending_verifications(url, n, first_number))) + "\n")
    return path


# -- wrk ------------------------------------------------------------------------------


@dataclass
class Run:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    cpu_percent: float
    rss_mb: float
    rows: int


def wrk_command(url: str, script: str, args: list[str], duration: float, connections: int, threads: int) -> list[str]:
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA / script),
        url,
        "--",
        *args,
    ]


def parse_wrk(output: str) -> dict[str, int]:
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON ") :])
    raise RuntimeError(f"wrk printed no report:\n{output}")


def measure(
    server: Server, path: str, script: str, args: list[str], options: argparse.Namespace, database_url: str | None
) -> Run:
    before_rows = count_attempts(database_url) if database_url else 0
    cpu, started = server.cpu_seconds(), time.monotonic()
    output = subprocess.run(
        wrk_command(server.url + path, script, args, options.duration, options.connections, options.threads),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return _run(server, parse_wrk(output), cpu, started, database_url, before_rows)


def _run(
    server: Server, report: dict[str, int], cpu: float, started: float, database_url: str | None, before_rows: int
) -> Run:
    elapsed = time.monotonic() - started
    time.sleep(0.3)  # the requests wrk cut off at the end finish their rows
    return Run(
        requests=report["requests"],
        rps=report["requests"] / (report["duration_us"] / 1e6),
        p50_ms=report["p50_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        errors={k: report[k] for k in ("connect", "read", "write", "status", "timeout") if report[k]},
        cpu_percent=100 * (server.cpu_seconds() - cpu) / elapsed,
        rss_mb=server.rss_mb(),
        rows=(count_attempts(database_url) - before_rows) if database_url else 0,
    )


#: Honest addresses, each used for one run's four starts only: 127.1.0.2, 127.1.0.3, …
_HONEST_ADDRESSES = itertools.count()


async def _honest_starts(url: str, stop_at: float, first_number: int) -> tuple[list[float], int]:
    """Starts from other loopback addresses while the flood runs: latencies (ms) and failures."""
    latencies: list[float] = []
    failed = 0
    i = 0
    clients: dict[str, httpx.AsyncClient] = {}
    try:
        while time.monotonic() < stop_at:
            # Four starts per address keep each honest address under the default 5/minute;
            # no address is used twice in a process (the repeats run within the same minute).
            if i % 4 == 0:
                n = next(_HONEST_ADDRESSES)
                address = f"127.1.{n // 250}.{2 + n % 250}"
            if address not in clients:
                transport = httpx.AsyncHTTPTransport(local_address=address)
                clients[address] = httpx.AsyncClient(transport=transport, base_url=url, timeout=5)
            started = time.perf_counter()
            response = await clients[address].post(
                "/verify",
                data={
                    "phone": f"+3165{(first_number + i) % 10_000_000:07d}",
                    "country": "NL",
                },  # 7 digits: a valid number
                headers={"HX-Request": "true"},
            )
            latencies.append((time.perf_counter() - started) * 1000)
            failed += response.status_code != 200
            i += 1
            await asyncio.sleep(0.05)
    finally:
        for client in clients.values():
            await client.aclose()
    return latencies, failed


async def _flood(server: Server, options: argparse.Namespace, offset: int) -> tuple[dict[str, int], list[float], int]:
    command = wrk_command(
        server.url + "/verify", "start.lua", [str(offset)], options.duration, options.connections, options.threads
    )
    wrk = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(0.5)  # the flood is at full speed first
    honest = asyncio.create_task(_honest_starts(server.url, time.monotonic() + options.duration - 1, offset))
    output, _ = await wrk.communicate()
    latencies, failed = await honest
    return parse_wrk(output.decode()), latencies, failed


# -- scenarios ------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    database: str
    runs: list[Run]
    reference_rps: float
    honest_p99_ms: float | None = None
    honest_failed: int = 0
    honest_count: int = 0
    rss_growth_mb: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(run.rps for run in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def ratio(self) -> float:
        return self.rps / self.reference_rps if self.reference_rps else 0.0

    @property
    def rss_mb(self) -> float:
        return max(run.rss_mb for run in self.runs)


def run_scenarios(options: argparse.Namespace) -> tuple[list[Result], list[Run]]:
    DATA.mkdir(parents=True, exist_ok=True)
    reference: list[Run] = []
    results: list[Result] = []
    hello = uvicorn_app("hello", "bench.hello:app")
    stub = uvicorn_app("stub", "bench.stub:app")
    try:
        for _ in range(options.repeat):
            reference.append(measure(hello, "/", "get.lua", [], options, None))
        ref = statistics.median(run.rps for run in reference)
        print(f"reference: {ref:,.0f} req/s", flush=True)
        offset = 0
        for kind in options.db:
            with database(kind) as url:
                server = voice2fa(url, stub)
                try:
                    if "page" in options.only and kind == options.db[0]:
                        results.append(
                            Result(
                                "page",
                                "—",
                                [measure(server, "/", "get.lua", [], options, None) for _ in range(options.repeat)],
                                ref,
                            )
                        )
                        _print(results[-1])
                    if "start" in options.only:
                        runs = []
                        for _ in range(options.repeat):
                            runs.append(measure(server, "/verify", "start.lua", [str(offset)], options, url))
                            offset += 2_000_000
                        results.append(Result("start", kind, runs, ref))
                        _print(results[-1])
                    for scenario, code, uses in (
                        ("confirm_wrong", WRONG_CODE, WRONG_USES),
                        ("confirm_right", RIGHT_CODE, 1),
                    ):
                        if scenario not in options.only:
                            continue
                        runs = []
                        for _ in range(options.repeat):
                            # Enough verifications that no cookie is used more than `uses` times.
                            n = int(options.pool_rate * options.duration / uses) + 1000
                            cookies = cookies_file(url, n, offset)
                            offset += n
                            runs.append(
                                measure(
                                    server,
                                    "/confirm",
                                    "confirm.lua",
                                    [str(cookies), code, str(uses), str(options.threads)],
                                    options,
                                    url,
                                )
                            )
                            cookies.unlink()
                        results.append(Result(scenario, kind, runs, ref))
                        _print(results[-1])
                    if "soak" in options.only and kind == options.db[0]:
                        results.append(soak(server, url, options, ref, offset))
                        offset += 10_000_000
                        _print(results[-1])
                finally:
                    stop(server)
                if "refused" in options.only:
                    server = voice2fa(url, stub, start_per_ip="5/minute;20/hour")
                    try:
                        results.append(refused(server, url, options, ref, offset))
                        offset += 2_000_000
                        _print(results[-1])
                    finally:
                        stop(server)
        for _ in range(options.repeat):  # the reference again: drift over the run shows here
            reference.append(measure(hello, "/", "get.lua", [], options, None))
        print(f"reference at the end: {statistics.median(r.rps for r in reference[options.repeat :]):,.0f} req/s")
    finally:
        stop(stub)
        stop(hello)
    return results, reference


def refused(server: Server, url: str, options: argparse.Namespace, ref: float, offset: int) -> Result:
    runs, latencies, failed = [], [], 0
    for i in range(options.repeat):
        before_rows = count_attempts(url)
        cpu, started = server.cpu_seconds(), time.monotonic()
        report, honest, honest_failed = asyncio.run(_flood(server, options, offset + i * 100_000))
        runs.append(_run(server, report, cpu, started, url, before_rows))
        runs[-1].rows -= len(honest)  # the honest starts' rows are theirs
        latencies += honest
        failed += honest_failed
    result = Result("refused", _db_name(url), runs, ref, honest_failed=failed, honest_count=len(latencies))
    if latencies:
        result.honest_p99_ms = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
    return result


def soak(server: Server, url: str, options: argparse.Namespace, ref: float, offset: int) -> Result:
    """100,000 mixed requests (starts, wrong codes, pages) in two halves; RSS after each."""
    half = options.soak // 2
    runs: list[Run] = []
    rss: list[float] = []
    for i in range(2):
        done = 0
        while done < half:
            script = ("start.lua", "confirm.lua", "get.lua")[len(runs) % 3]
            args: list[str] = []
            path = {"start.lua": "/verify", "confirm.lua": "/confirm", "get.lua": "/"}[script]
            cookies = None
            if script == "start.lua":
                args = [str(offset + len(runs) * 1_000_000)]
            elif script == "confirm.lua":
                cookies = cookies_file(url, 3000, offset + 5_000_000 + len(runs) * 3000)
                args = [str(cookies), WRONG_CODE, str(WRONG_USES), str(options.threads)]
            short = argparse.Namespace(**{**vars(options), "duration": 3})
            runs.append(measure(server, path, script, args, short, url))
            done += runs[-1].requests
            if cookies:
                cookies.unlink()
        rss.append(server.rss_mb())
    result = Result("soak", _db_name(url), runs, ref)
    result.rss_growth_mb = rss[1] - rss[0]
    result.notes.append(f"RSS {rss[0]:.0f} MB after {half:,}, {rss[1]:.0f} MB after {2 * half:,} requests")
    return result


def _db_name(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


# -- the table ------------------------------------------------------------------------


def _print(result: Result) -> None:
    print(_row(result), flush=True)


def _row(r: Result) -> str:
    label, met = GOALS[r.scenario]
    rows = sum(run.rows for run in r.runs)
    answered = sum(run.requests for run in r.runs)
    accounted = "—" if r.scenario in ("page", "soak") else f"{rows:,} / {answered:,}"
    errors: dict[str, int] = {}
    for run in r.runs:
        for key, value in run.errors.items():
            errors[key] = errors.get(key, 0) + value
    extra = list(r.notes)
    if r.scenario == "refused":
        extra.append(f"honest starts: {r.honest_count}, p99 {r.honest_p99_ms or 0:.1f} ms, {r.honest_failed} failed")
    if errors:
        extra.append("wrk: " + ", ".join(f"{k} {v:,}" for k, v in errors.items()))
    cpu = statistics.median(run.cpu_percent for run in r.runs)
    return (
        f"| {r.scenario} | {r.database} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.ratio:.3f}× "
        f"| {cpu:.0f} % | {r.rss_mb:.0f} | {accounted} | {label} | {'yes' if met(r) else '**no**'} "
        f"| {'; '.join(extra)} |"
    )


def table(results: list[Result], reference: list[Run], options: argparse.Namespace) -> str:
    ref = statistics.median(run.rps for run in reference[: options.repeat])
    end = statistics.median(run.rps for run in reference[options.repeat :]) if len(reference) > options.repeat else ref
    ref_p99 = statistics.median(run.p99_ms for run in reference)
    lines = [
        "## HTTP: throughput and tail latency (bench/http_load.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `bench/http_load.py --duration {options.duration:g} "
        f"--repeat {options.repeat} --connections {options.connections} --threads {options.threads}`.",
        "",
        f"Machine: {_machine()}. Load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
        f"Reference: bare Starlette hello on uvicorn (uvloop + httptools), {ref:,.0f} req/s at the start, "
        f"{end:,.0f} at the end, p99 {ref_p99:.1f} ms (ratios use the start). wrk -t{options.threads} "
        f"-c{options.connections}, median of {options.repeat} × {options.duration:g} s. "
        "Rows: the attempts log's count against the requests wrk saw answered (the log may hold a few more: "
        "requests wrk cut off at the end are still answered).",
        "",
        "| scenario | db | req/s | p50 ms | p99 ms | ratio | CPU | RSS MB | rows / answered | goal | met | notes |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|:-:|---|",
        *(_row(result) for result in results),
        "",
    ]
    return "\n".join(lines)


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    versions = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()[1]
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {memory:.1f} GiB RAM, Linux {platform.release()}; "
        f"Python {platform.python_version()}; wrk {versions}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--db", type=lambda s: s.split(","), default=["sqlite", "postgresql"])
    parser.add_argument("--only", type=lambda s: set(s.split(",")), default=set(GOALS))
    parser.add_argument("--soak", type=int, default=100_000, help="requests in the memory soak")
    parser.add_argument(
        "--pool-rate",
        type=float,
        default=3000,
        help="checks/s to make verifications for (more than the server can answer)",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-write", action="store_true")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (apt-get install wrk)")
    results, reference = run_scenarios(options)
    report = table(results, reference, options)
    print("\n" + report)
    if not options.no_write:
        write_section(Path(options.out), "http", report)
        print(f"written to {options.out}")


if __name__ == "__main__":
    main()
