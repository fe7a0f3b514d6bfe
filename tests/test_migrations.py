"""Alembic migrations on both databases: up, all the way down, up again; and the models match them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Connection

from tests.support import postgres_database, postgres_url
from webapp import migrate
from webapp.db import create_engine
from webapp.models import Attempt, Base, CircuitBreak, Verification

TABLES = set(Base.metadata.tables)
INDEXES = {index.name for table in Base.metadata.tables.values() for index in table.indexes}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nobody has migrated: a new SQLite file, or a new, empty PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("postgres_available")
    with postgres_database("v2fa_m") as name:
        yield postgres_url(name)


def _schema(connection: Connection) -> dict[str, Any]:
    """Tables, their columns, indexes and foreign keys, as the database itself reports them."""
    inspector = inspect(connection)
    return {
        table: {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
            ),
            "foreign_keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], fk["options"].get("ondelete"))
                for fk in inspector.get_foreign_keys(table)
            ),
        }
        for table in inspector.get_table_names()
    }


async def schema(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_schema)
    finally:
        await engine.dispose()


async def version_rows(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return list((await connection.scalars(text("SELECT version_num FROM alembic_version"))).all())
    finally:
        await engine.dispose()


@pytest.fixture
async def migrated_url(empty_database_url: str) -> str:
    """The empty database brought to head."""
    migrate.upgrade(empty_database_url)
    return empty_database_url


async def test_upgrade_head_makes_every_table_and_index_of_the_models(migrated_url: str) -> None:
    made = await schema(migrated_url)
    assert set(made) == TABLES | {"alembic_version"}
    indexes = {name for table in made.values() for name, _, _ in table["indexes"]}
    assert indexes >= INDEXES
    assert ("uq_verifications_live_number", ("number",), True) in made["verifications"]["indexes"]
    assert made["attempts"]["foreign_keys"] == [(("verification_id",), "verifications", "SET NULL")]
    head = ScriptDirectory.from_config(migrate.alembic_config(migrated_url)).get_current_head()
    assert await version_rows(migrated_url) == [head]


async def test_downgrade_base_leaves_only_an_empty_version_table(migrated_url: str) -> None:
    migrate.downgrade(migrated_url, "base")
    assert set(await schema(migrated_url)) == {"alembic_version"}
    assert await version_rows(migrated_url) == []


async def test_upgrade_after_downgrade_base_makes_the_same_schema_again(migrated_url: str) -> None:
    first = await schema(migrated_url)
    migrate.downgrade(migrated_url, "base")
    migrate.upgrade(migrated_url)
    assert await schema(migrated_url) == first


def _differences(connection: Connection) -> list[Any]:
    return compare_metadata(MigrationContext.configure(connection), Base.metadata)


async def test_the_models_match_the_migrations(migrated_url: str) -> None:
    """What `alembic revision --autogenerate` would write now: nothing."""
    engine = create_engine(migrated_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_0004_numbers_the_old_breaks_and_tells_calls_never_placed_apart(empty_database_url: str) -> None:
    """Breaks from before 0004 (one trip wrote duplicates) get an epoch each; `failed` calls that never went out become `unplaced`."""
    url = empty_database_url
    migrate.upgrade(url, "0003")
    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    breaks = CircuitBreak.__table__
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for country, seconds in (("NL", 0), ("NL", 0), ("NL", 0), ("BE", 5), ("NL", 7200)):
                opened = at + timedelta(seconds=seconds)
                await connection.execute(
                    insert(breaks).values(
                        country=country,
                        opened_at=opened,
                        until=opened + timedelta(hours=1),
                        verified_share=0.0,
                        window=20,
                    )
                )
            for ref, status, history in (
                ("placed", "failed", [("start", "sent"), ("check", "attempts_exhausted")]),
                ("call-failed", "failed", [("start", "call_failed")]),
                (None, "failed", [("start", "provider_error")]),
                (
                    "recalled",
                    "failed",
                    [
                        ("start", "sent"),
                        ("resend", "provider_error"),
                        ("resend", "sent"),
                        ("check", "attempts_exhausted"),
                    ],
                ),
                ("resend-down", "failed", [("start", "sent"), ("resend", "provider_error"), ("check", "closed")]),
                ("gone", "expired", [("start", "sent")]),
            ):
                verification = ref or "noref"
                await connection.execute(
                    insert(Verification.__table__).values(
                        id=verification,
                        number="+31612345678",
                        country="NL",
                        channel="tts",
                        provider_ref=ref,
                        status=status,
                        code_attempts=0,
                        calls=1,
                        ip="198.51.100.1",
                        created_at=at,
                        last_call_at=at,
                        expires_at=at,
                    )
                )
                for kind, outcome in history:
                    await connection.execute(
                        insert(Attempt.__table__).values(
                            created_at=at,
                            kind=kind,
                            number="+31612345678",
                            region="NL",
                            ip="198.51.100.1",
                            channel="tts",
                            outcome=outcome,
                            verification_id=verification,
                        )
                    )
        migrate.upgrade(url)
        async with engine.connect() as connection:
            epochs = (await connection.execute(text("SELECT scope, epoch FROM circuit_breaks ORDER BY id"))).all()
            statuses = dict((await connection.execute(text("SELECT id, status FROM verifications"))).all())
        assert [tuple(row) for row in epochs] == [("NL", 0), ("NL", 1), ("NL", 2), ("BE", 0), ("NL", 3)]
        assert statuses == {
            "placed": "failed",
            "call-failed": "unplaced",
            "noref": "unplaced",
            "recalled": "failed",
            "resend-down": "unplaced",
            "gone": "expired",
        }
        migrate.downgrade(url, "0003")
        async with engine.connect() as connection:
            statuses = dict((await connection.execute(text("SELECT id, status FROM verifications"))).all())
        assert set(statuses.values()) == {"failed", "expired"}
    finally:
        await engine.dispose()


async def test_0008_counts_every_earlier_row_as_one_request(empty_database_url: str) -> None:
    url = empty_database_url
    migrate.upgrade(url, "0007")
    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for outcome in ("sent", "blocked_ip"):
                await connection.execute(
                    text(
                        "INSERT INTO attempts (created_at, kind, ip, channel, outcome) "
                        "VALUES (:at, 'start', '198.51.100.1', 'tts', :outcome)"
                    ),
                    {"at": at.replace(tzinfo=None), "outcome": outcome},
                )
        migrate.upgrade(url)
        async with engine.connect() as connection:
            counts = (await connection.execute(text("SELECT outcome, count FROM attempts ORDER BY id"))).all()
        assert [tuple(row) for row in counts] == [("sent", 1), ("blocked_ip", 1)]
        migrate.downgrade(url, "0007")
        assert "count" not in [name for name, _type, _null in (await schema(url))["attempts"]["columns"]]
    finally:
        await engine.dispose()


async def test_0009_names_messagebird_for_what_came_before_and_leaves_attempts_without_a_provider_alone(
    empty_database_url: str,
) -> None:
    """Before 0009 MessageBird was the only provider: its verifications, and the attempts it took part in."""
    url = empty_database_url
    migrate.upgrade(url, "0008")
    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for ident, ref in (("placed", "ref1"), ("unplaced", None)):
                await connection.execute(
                    insert(Verification.__table__).values(
                        id=ident,
                        number="+31612345678",
                        country="NL",
                        channel="tts",
                        provider_ref=ref,
                        status="pending" if ref else "unplaced",
                        code_attempts=0,
                        calls=1,
                        ip="198.51.100.1",
                        created_at=at,
                        last_call_at=at,
                        expires_at=at,
                    )
                )
            for outcome, ref, latency in (
                ("sent", "ref1", 120),
                ("provider_error", None, 15000),
                ("blocked_ip", None, None),
                ("invalid_number", None, None),
            ):
                await connection.execute(
                    insert(Attempt.__table__).values(
                        created_at=at,
                        kind="start",
                        number="+31612345678",
                        region="NL",
                        ip="198.51.100.1",
                        channel="tts",
                        outcome=outcome,
                        provider_ref=ref,
                        provider_latency_ms=latency,
                    )
                )
        migrate.upgrade(url, "0009")
        async with engine.connect() as connection:
            verifications = dict((await connection.execute(text("SELECT id, provider FROM verifications"))).all())
            attempts = dict((await connection.execute(text("SELECT outcome, provider FROM attempts"))).all())
        assert verifications == {"placed": "messagebird", "unplaced": "messagebird"}
        assert attempts == {
            "sent": "messagebird",
            "provider_error": "messagebird",
            "blocked_ip": None,
            "invalid_number": None,
        }
        migrate.downgrade(url, "0008")
        async with engine.connect() as connection:
            columns = await connection.run_sync(lambda c: [col["name"] for col in inspect(c).get_columns("attempts")])
        assert "provider" not in columns
    finally:
        await engine.dispose()
