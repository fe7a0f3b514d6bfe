"""A fast MessageBird Verify stub, for the benchmark: its own process, so the
app's provider calls cross real HTTP without the sandbox's cost in the figures.

    uvicorn bench.stub:app --loop uvloop --http httptools --no-access-log

Stateless: POST /verify answers a new verify object; GET /verify/{id}?token=
answers "verified" for the token 123456 and "The token is invalid." for any
other; GET /verify/{id} answers it "sent"; DELETE answers 204. Any id is
accepted, so the benchmark can make verifications straight in the database.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

RIGHT_CODE = "123456"

_JSON = [(b"content-type", b"application/json")]


def _object(ref: str, status: str, recipient: int = 31612345678) -> bytes:
    now = datetime.now(UTC).replace(microsecond=0)
    return json.dumps(
        {
            "id": ref,
            "href": f"http://stub/verify/{ref}",
            "recipient": recipient,
            "originator": None,
            "type": "tts",
            "reference": None,
            "messages": {"href": f"http://stub/voicemessages/{ref}"},
            "status": status,
            "createdDatetime": now.isoformat(),
            "validUntilDatetime": (now + timedelta(seconds=300)).isoformat(),
        }
    ).encode()


async def _body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path, method = scope["path"], scope["method"]
    status, body = 404, b'{"errors":[{"code":20,"description":"not found","parameter":null}]}'
    if path == "/verify" and method == "POST":
        data = json.loads(await _body(receive) or b"{}")
        status, body = 201, _object(secrets.token_hex(16), "sent", int(data.get("recipient", 31612345678)))
    elif path.startswith("/verify/"):
        ref = path[len("/verify/") :]
        token = parse_qs(scope["query_string"].decode()).get("token", [""])[0]
        if method == "DELETE":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if not token:
            status, body = 200, _object(ref, "sent")
        elif token == RIGHT_CODE:
            status, body = 200, _object(ref, "verified")
        else:
            status = 422
            body = b'{"errors":[{"code":10,"description":"The token is invalid.","parameter":"token"}]}'
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})
