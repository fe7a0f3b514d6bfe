"""voice2fa as an OpenID Connect provider: the hand-off to a site's sign-up flow.

    clients.py     the registered sites: redirect URI rules, secrets (scrypt), add / list / remove
    keys.py        the RSA keys that sign ID tokens, kept in the database (or a PEM file): the JWKS
    subjects.py    pairwise `sub` values, from a secret every worker shares
    codes.py       one-time authorization codes and opaque access tokens, stored as SHA-256
    authorize.py   the authorization endpoint's checks: the per-IP limit, error page or redirect, storing
    parameters.py  the request's parameters: parsed strictly, checked (PKCE S256, scope, prompt, ...)
    completion.py  completing or cancelling a request: the redirect back with a code or access_denied
    handoff.py     a pending request as the verification page sees it (for whom, since when, its origin)
    page.py        the page during a hand-off: loading it per request, the way back, cancel, continue
    tokens.py      the token endpoint (authorization_code + PKCE S256), the ID token, userinfo
    provider.py    what the endpoints share: settings, database, clock, keys, limits, the log
    endpoints.py   HTTP: discovery, JWKS, authorize, token, userinfo

The protocol's vocabulary comes from Authlib (its OAuth 2.0 error types, PKCE's
S256, the Basic credentials of RFC 6749 §2.3.1) and the JOSE work from joserfc;
the endpoints' own code is async over the project's database. Authlib's
server and grant classes are not used: they call synchronous storage hooks in
the middle of validating, while a code's single use has to be an atomic update
in the shared database, and an authorization request here spans several
requests (it waits for a phone call) rather than one consent form.
"""
