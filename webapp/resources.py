"""Where the templates, migrations and static files are, installed or not.

A wheel carries the top-level templates/ and migrations/ inside the package
(`webapp/_bundled/`, see pyproject.toml); a source checkout has them beside it.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
_BUNDLED = PACKAGE / "_bundled"
_ROOT = _BUNDLED if _BUNDLED.is_dir() else PACKAGE.parent

TEMPLATES = _ROOT / "templates"
MIGRATIONS = _ROOT / "migrations"
ALEMBIC_INI = _ROOT / "alembic.ini"
STATIC = PACKAGE / "static"
