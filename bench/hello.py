"""The reference: a bare Starlette "hello", served like the benchmark serves voice2fa.

    uvicorn bench.hello:app --loop uvloop --http httptools --no-access-log

Every voice2fa figure in the benchmark is a ratio to this app's GET in the same run,
so that a shared, noisy machine still gives comparable numbers.
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


app = Starlette(routes=[Route("/", hello)])
