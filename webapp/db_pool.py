"""How many PostgreSQL connections each worker process keeps (DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW).

SQLAlchemy's default (5, and 10 more under load) makes requests queue for a
connection once more than five are in flight, which a flood of starts gets
to at once. The engine of SQLite is `webapp.db`'s business: these options
are for PostgreSQL only. With W workers the server must accept
W × (size + overflow) connections (PostgreSQL's `max_connections` is 100 by
default, a few of them reserved).
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from webapp.settings import Settings


def pool_options(settings: Settings) -> dict[str, int]:
    """Keyword arguments for the app's engine: the pool's sizes on PostgreSQL, nothing elsewhere."""
    if make_url(settings.database_url).get_backend_name() != "postgresql":
        return {}
    return {"pool_size": settings.database_pool_size, "max_overflow": settings.database_max_overflow}
