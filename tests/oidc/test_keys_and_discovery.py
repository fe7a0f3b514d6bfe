"""Discovery, the JWKS, and the signing keys: rotation, retirement, a key file."""

from __future__ import annotations

import base64

import httpx
import pytest
from asgi_lifespan import LifespanManager
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError
from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Secret

from tests.oidc.support import ISSUER, Registered, exchange, issue_code, jwks
from tests.support import FakeClock
from webapp.app import create_app
from webapp.limits import RateLimits
from webapp.oidc import keys
from webapp.oidc.provider import Provider
from webapp.settings import Settings

PUBLIC = "https://verify.example.com"


@pytest.mark.parametrize("settings_changes", [{"public_url": PUBLIC}])
async def test_discovery_describes_the_provider(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    document = response.json()
    OpenIDProviderMetadata(document).validate()  # Authlib's check of OpenID Connect Discovery §3
    assert document["issuer"] == PUBLIC
    assert document["authorization_endpoint"] == PUBLIC + "/oidc/authorize"
    assert document["token_endpoint"] == PUBLIC + "/oidc/token"
    assert document["userinfo_endpoint"] == PUBLIC + "/oidc/userinfo"
    assert document["jwks_uri"] == PUBLIC + "/oidc/jwks"
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code"]
    assert document["subject_types_supported"] == ["pairwise"]
    assert "RS256" in document["id_token_signing_alg_values_supported"]
    assert document["scopes_supported"] == ["openid", "phone"]
    assert {"phone_number", "phone_number_verified", "sub", "amr"} <= set(document["claims_supported"])
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert document["authorization_response_iss_parameter_supported"] is True


async def test_in_sandbox_mode_without_public_url_the_issuer_is_the_served_address(client: httpx.AsyncClient) -> None:
    document = (await client.get("http://127.0.0.1:8000/.well-known/openid-configuration")).json()
    assert document["issuer"] == "http://127.0.0.1:8000"
    assert document["token_endpoint"] == "http://127.0.0.1:8000/oidc/token"


async def test_outside_sandbox_mode_the_hand_off_needs_public_url(settings: Settings, clock: FakeClock) -> None:
    application = create_app(settings.replace(messagebird_api_key=Secret("live_x")), clock=clock)
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/.well-known/openid-configuration")).status_code == 404
            assert (await http.get("/oidc/jwks")).status_code == 404


async def test_the_jwks_holds_only_public_keys(client: httpx.AsyncClient) -> None:
    [key] = (await client.get("/oidc/jwks")).json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    # the kid is the published key's RFC 7638 thumbprint, in hex (no leading "-" for `keys retire`)
    thumbprint = base64.urlsafe_b64decode(RSAKey.import_key(key).thumbprint() + "=")
    assert key["kid"] == thumbprint.hex()
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


async def test_every_worker_signs_with_the_key_the_first_one_made(
    provider: Provider,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    another = Provider(settings, db, clock, RateLimits("memory://"))
    assert (await provider.keys.signing_key()).kid == (await another.keys.signing_key()).kid
    async with db() as session:
        assert len(await keys.active(session)) == 1


async def test_a_rotated_key_signs_while_the_old_one_still_verifies_until_retired(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    old_token = (await exchange(site_server, shop, await issue_code(provider, shop, clock))).json()["id_token"]
    old_kid = jwt.decode(old_token, await jwks(site_server)).header["kid"]

    clock.advance(1)
    async with db() as session:
        new_kid = await keys.create(session, clock())  # voice2fa keys rotate
    new_token = (await exchange(site_server, shop, await issue_code(provider, shop, clock))).json()["id_token"]
    published = await jwks(site_server)
    assert jwt.decode(new_token, published).header["kid"] == new_kid != old_kid
    assert jwt.decode(old_token, published).claims["aud"] == shop.client_id

    async with db() as session:
        await keys.retire(session, old_kid, clock())  # voice2fa keys retire <old kid>
    published = await jwks(site_server)
    assert [key.kid for key in published] == [new_kid]
    with pytest.raises(InvalidKeyIdError):
        jwt.decode(old_token, published)
    assert jwt.decode(new_token, published).header["kid"] == new_kid


async def test_the_key_that_signs_cannot_be_retired(
    provider: Provider, db: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    signing = await provider.keys.signing_key()
    async with db() as session:
        with pytest.raises(ValueError, match="rotate"):
            await keys.retire(session, signing.kid, clock())


async def test_retiring_an_unknown_key_says_so(db: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    async with db() as session:
        with pytest.raises(ValueError, match="no signing key"):
            await keys.retire(session, "nope", clock())


@pytest.fixture
def key_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A PEM file with an RSA private key; its path and its kid."""
    key = RSAKey.generate_key(2048)
    path = tmp_path_factory.mktemp("key") / "signing.pem"
    path.write_bytes(key.as_pem(private=True))
    return str(path), keys.kid_of(key)


async def test_a_key_file_signs_and_is_published(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    key_file: tuple[str, str],
    shop: Registered,
    site_server: httpx.AsyncClient,
) -> None:
    path, kid = key_file
    with_file = Provider(settings.replace(oidc_signing_key_file=path), db, clock, RateLimits("memory://"))
    await with_file.keys.start()
    assert (await with_file.keys.signing_key()).kid == kid
    assert [key["kid"] for key in (await with_file.keys.jwks())["keys"]] == [kid]
    async with db() as session:
        assert await keys.every(session) == []  # the file's key is not copied into the database


async def test_a_key_file_without_a_private_key_stops_the_start(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = tmp_path_factory.mktemp("key") / "public.pem"
    path.write_bytes(RSAKey.generate_key(2048).as_pem(private=False))
    provider = Provider(settings.replace(oidc_signing_key_file=str(path)), db, clock, RateLimits("memory://"))
    with pytest.raises(ValueError, match="private key"):
        await provider.keys.start()


async def test_a_token_signed_by_another_key_with_the_same_kid_is_rejected(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    real = (await exchange(site_server, shop, await issue_code(provider, shop, clock))).json()["id_token"]
    kid = jwt.decode(real, await jwks(site_server)).header["kid"]
    forged = jwt.encode(
        {"alg": "RS256", "kid": kid}, {"iss": ISSUER, "aud": shop.client_id, "sub": "x"}, RSAKey.generate_key(2048)
    )
    with pytest.raises(BadSignatureError):
        jwt.decode(forged, await jwks(site_server))
