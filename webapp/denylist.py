"""The operators' deny list: numbers, number prefixes and IP networks.

Stored in the database (`deny_entries`) so every process sees a change at
once; checked before anything else a start could cost.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import affected
from webapp.models import AdminAction, DenyEntry
from webapp.phone import InvalidNumber, parse_phone

_PREFIX = re.compile(r"\+[1-9][0-9]{0,14}")


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # number | prefix | ip
    value: str


def parse_entry(text: str) -> Entry:
    """What an operator typed, as an entry: "+31612345678", "+3197*" (a prefix), "203.0.113.0/24"."""
    text = text.strip()
    if not text:
        raise ValueError("Give a number (+31612345678), a prefix (+3197*) or an IP address or network.")
    # 00 dials abroad as + does; an IPv6 address may start with 00 too, but has colons.
    number = "+" + text[2:] if text.startswith("00") and ":" not in text else text
    # "+31 (0)6…" writes the trunk zero that international dialling drops.
    number = number.replace("(0)", "")
    if number.endswith("*"):
        prefix = re.sub(r"[\s\-.()/]", "", number[:-1])
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"{text!r} is not a number prefix like +3197*")
        return Entry("prefix", prefix)
    if number.startswith("+"):
        try:
            return Entry("number", parse_phone(number, "").e164)
        except InvalidNumber:
            # Never guess a prefix from a mistyped number: a range is asked for with "*".
            raise ValueError(
                f"{text!r} is not a valid number; for a range of numbers write a prefix like +3197*"
            ) from None
    try:
        if "%" in text:  # a zone ("fe80::1%eth0") is no client's address, and may hold anything, NUL included
            raise ValueError(text)
        return Entry("ip", str(ipaddress.ip_network(text, strict=False)))
    except ValueError:
        raise ValueError(f"{text!r} is not a number (with +country code), a prefix or an IP address/network") from None


async def add(session: AsyncSession, entry: Entry, *, reason: str | None, by: str, now: datetime) -> bool:
    """Add `entry`; False if it was there already."""
    session.add(_entry_row(entry, reason=reason, by=by, now=now))
    return await _commit_unless_there(session)


async def remove(session: AsyncSession, entry: Entry) -> bool:
    """Remove `entry`; False if it was not there."""
    removed = await _delete(session, entry)
    await session.commit()
    return removed


async def apply(
    session: AsyncSession, action: str, entry: Entry, *, operator: str, reason: str | None, now: datetime
) -> bool:
    """An operator's deny or allow and its `admin_actions` row, in one transaction; False if nothing changed.

    Either both are written or neither: an entry never changes without its
    record of who changed it, and a record never names a change that was not made.
    """
    if action == "deny":
        session.add(_entry_row(entry, reason=reason, by="admin:" + operator, now=now))
    elif not await _delete(session, entry):
        await session.rollback()
        return False
    session.add(
        AdminAction(
            at=now,
            operator=operator[:64],
            action=action,
            kind=entry.kind,
            value=entry.value,
            reason=(reason or None) and reason[:200],
        )
    )
    return await _commit_unless_there(session)


def _entry_row(entry: Entry, *, reason: str | None, by: str, now: datetime) -> DenyEntry:
    return DenyEntry(
        kind=entry.kind, value=entry.value, reason=(reason or None) and reason[:200], created_at=now, created_by=by[:64]
    )


async def _delete(session: AsyncSession, entry: Entry) -> bool:
    result = await session.execute(
        delete(DenyEntry).where(DenyEntry.kind == entry.kind, DenyEntry.value == entry.value)
    )
    return bool(affected(result))


async def _commit_unless_there(session: AsyncSession) -> bool:
    """Commit; False (and nothing written) when an entry added is there already."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True


async def entries(session: AsyncSession) -> list[DenyEntry]:
    """Every entry, by kind and value."""
    return list((await session.scalars(select(DenyEntry).order_by(DenyEntry.kind, DenyEntry.value))).all())


async def number_entries(session: AsyncSession, e164: str) -> list[DenyEntry]:
    """The entries that deny `e164`: the number itself, and prefixes of it."""
    query = (
        select(DenyEntry)
        .where(
            or_(
                (DenyEntry.kind == "number") & (DenyEntry.value == e164),
                # Not LIKE: a stored "_" or "%" would be a wildcard. substr/length mean the same on SQLite and PostgreSQL.
                (DenyEntry.kind == "prefix")
                & (func.substr(literal(e164), 1, func.length(DenyEntry.value)) == DenyEntry.value),
            )
        )
        .order_by(DenyEntry.kind, DenyEntry.value)
    )
    return list((await session.scalars(query)).all())


async def number_denied(session: AsyncSession, e164: str) -> bool:
    """Whether `e164` is denied, itself or by a prefix."""
    return bool(await number_entries(session, e164))


async def ip_entries(session: AsyncSession, ip: str) -> list[DenyEntry]:
    """The entries whose address or network holds `ip`."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return []
    address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:203.0.113.7, from a dual-stack socket
    found = (await session.scalars(select(DenyEntry).where(DenyEntry.kind == "ip"))).all()
    return [entry for entry in found if address in ipaddress.ip_network(entry.value, strict=False)]


async def ip_denied(session: AsyncSession, ip: str) -> bool:
    """Whether `ip` is in a denied address or network."""
    return bool(await ip_entries(session, ip))


async def recent_actions(session: AsyncSession, limit: int = 50) -> list[AdminAction]:
    """The operators' latest actions, newest first."""
    query = select(AdminAction).order_by(AdminAction.at.desc(), AdminAction.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())
