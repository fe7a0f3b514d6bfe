"""The JSON API, /api/v1: a site's backend drives the same flow as the page.

- `endpoints.py`: the handlers (HTTP only: authenticate, read, call the flow, answer).
- `routing.py`: the routes, by path and method; 404 and 405 as problem details.
- `schemas.py`: the request and response bodies (pydantic), validated and documented by the same models.
- `openapi.py`: the OpenAPI 3.1 document, generated from them; `docs.py`: the page for people.
- `problems.py`: RFC 9457 problem details, from one table keyed by outcome.
- `body.py`: reading a JSON body (size, depth, content type, then the model).
- `auth.py`: the caller, a registered client, by HTTP Basic; failures limited per IP.
- `idempotency.py`: `Idempotency-Key`, claimed in the database before any call.
- `context.py`: what the handlers share, made by the lifespan.
- `sandbox.py`: in sandbox mode, the calls (and codes) of a client's verification.
"""
