"""The ASGI app for servers: `uvicorn webapp.asgi:app` (settings from the environment)."""

from webapp.app import create_app
from webapp.settings import Settings

app = create_app(Settings.from_env())
