"""Security properties over real HTTP (ARCHITECTURE.md §6, issue 8).

- Repeated authentication failures from one client get 429 with Retry-After,
  before any credential is verified; other clients are unaffected; the window
  ends; X-Forwarded-For counts only from a trusted proxy; memory is capped.
- JWT: on an RS256 server, ``nbf``/``exp``/missing ``exp``, ``alg: none``,
  HMAC keyed with the public key (alg confusion) and every other ``alg`` are
  refused; ``exp`` has no leeway.
- API keys: the database never holds one in plain text; a wrong secret of the
  right length is refused like an unknown key; digests are compared with
  ``hmac.compare_digest``, also for unknown key ids.
- Tenancy: for every route and every role (and a JWT caller), another
  organization's id gets the very reply (status, body, headers) an unknown id gets.
- Audit: every control request — own routes, bulk and the seed-compatible
  routes, by API key and by JWT — is in the execution's audit with its actor,
  result and request id.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from pausepoint.api import create_app
from pausepoint.api.ratelimit import AuthFailureLimiter, client_key, parse_networks
from pausepoint.config import Settings
from pausepoint.service import auth
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually, fast_settings
from tests.api.conftest import APPROVAL_FLOW, RunningServer, free_port, running_server, serving
from tests.api.matrix_support import (
    assert_sane,
    audit,
    gated_server,
    gates,
    operations,
    path_params,
    request_body,
    start,
    state_of,
    wait_settled,
    wait_started,
    wait_state,
)
from tests.api.test_auth import SECRET, b64, bearer, claims, hand_signed, hs256, rsa_keys
from tests.api.test_server_crash import KEY, server_process, wait_healthy
from tests.api.test_tenancy import UPSERTS, acme_resources, scrub
from tests.conftest import EXAMPLES

EXECUTIONS = "/api/v1/executions"

# -- a server whose client address is the socket peer ------------------------------------


@dataclass
class LimitedServer:
    base_url: str
    engine: Engine
    limiter: Callable[[], AuthFailureLimiter]
    key: str  # acme admin

    def client(self, source: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
        """A client whose connections come from ``source`` (any 127.x address works)."""
        transport = httpx.AsyncHTTPTransport(local_address=source)
        return httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=30, **kwargs)


@contextlib.asynccontextmanager
async def limited_server(db_path: Path, **overrides: Any) -> AsyncIterator[LimitedServer]:
    """A real server on loopback with uvicorn's own X-Forwarded-For handling off.

    uvicorn trusts X-Forwarded-For from 127.0.0.1 by default and rewrites the
    client address before the app sees it; off, only ``trusted_proxies`` decides.
    """
    engine = Engine(fast_settings(db_path, **overrides), serve=True)
    await engine.start()
    app = create_app(engine)
    try:
        async with serving(app) as (base_url, _):
            key, _ = await engine.as_org("acme").create_api_key("admin", "security")
            await engine.as_org("acme").put_flow(APPROVAL_FLOW)
            yield LimitedServer(base_url, engine, lambda: app.state.auth_failures[0], key)
    finally:
        await engine.stop()


def rsa_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def wrong_key(number: int) -> dict[str, str]:
    return {"X-API-Key": f"pp_{number:012x}_{'W' * 43}"}


async def fail_auth(http: httpx.AsyncClient, times: int, **headers: str) -> None:
    for number in range(times):
        reply = await http.get(EXECUTIONS, headers={**wrong_key(number), **headers})
        assert reply.status_code == 401, f"failure {number + 1}: {reply.text}"


def assert_limited(reply: httpx.Response, window: float) -> None:
    assert reply.status_code == 429, reply.text
    retry_after = reply.headers.get("retry-after", "")
    assert retry_after.isdigit() and 1 <= int(retry_after) <= window + 1, reply.headers
    detail = reply.json()["detail"]
    assert isinstance(detail, str) and "too many failed authentications" in detail, detail
    assert reply.headers.get("x-request-id"), reply.headers


class CountingAuthenticator:
    """Counts calls into the real authenticator: proof that nothing was verified."""

    def __init__(self, engine: Engine) -> None:
        self.calls = 0
        real = engine.authenticator
        original = real.authenticate

        async def counted(**kwargs: Any) -> auth.Principal:
            self.calls += 1
            return await original(**kwargs)

        real.authenticate = counted  # type: ignore[method-assign]


# -- rate limiting ------------------------------------------------------------------------


async def test_repeated_failures_get_429_with_retry_after_before_any_verification(
    db_path: Path,
) -> None:
    async with limited_server(
        db_path, auth_failure_limit=5, auth_failure_window=30, jwt_key=SECRET
    ) as server:
        counter = CountingAuthenticator(server.engine)
        async with server.client() as http:
            await fail_auth(http, 5)
            assert counter.calls == 5
            limited = await http.get(EXECUTIONS, headers=wrong_key(99))
            assert_limited(limited, 30)
            # From now on nothing is verified, right or wrong, on every kind of route.
            valid_key = {"X-API-Key": server.key}
            valid_jwt = bearer(hs256(claims(role="admin")))
            for method, path, headers in (
                ("GET", EXECUTIONS, valid_key),
                ("GET", EXECUTIONS, valid_jwt),
                ("POST", f"{EXECUTIONS}/some-id/pause", valid_key),
                ("POST", "/api/v1/tasks/some-id/pause", valid_key),  # Shannon's shape
                ("POST", "/executions/some-id/pause", valid_jwt),  # Syntropic137's shape
                ("GET", "/api/v1/me", {"Authorization": f"Bearer {server.key}"}),
            ):
                reply = await http.request(method, path, headers=headers, json={})
                assert_limited(reply, 30)
            assert counter.calls == 5, "a limited client's credentials were still verified"
            # Routes that need no credentials still answer.
            assert (await http.get("/healthz")).status_code == 200


async def test_other_clients_are_not_affected(db_path: Path) -> None:
    async with limited_server(db_path, auth_failure_limit=3, auth_failure_window=30) as server:
        async with server.client("127.0.0.1") as guesser, server.client("127.0.0.2") as other:
            await fail_auth(guesser, 3)
            assert_limited(await guesser.get(EXECUTIONS, headers={"X-API-Key": server.key}), 30)
            me = await other.get("/api/v1/me", headers={"X-API-Key": server.key})
            assert me.status_code == 200, me.text
            # Its own failures start from zero.
            await fail_auth(other, 2)
            ok = await other.get(EXECUTIONS, headers={"X-API-Key": server.key})
            assert ok.status_code == 200, ok.text
        assert len(server.limiter()) == 2


async def test_access_returns_when_the_window_ends(db_path: Path) -> None:
    window = 1.0
    async with (
        limited_server(db_path, auth_failure_limit=3, auth_failure_window=window) as server,
        server.client() as http,
    ):
        valid = {"X-API-Key": server.key}
        started = time.monotonic()
        await fail_auth(http, 3)
        assert_limited(await http.get(EXECUTIONS, headers=valid), window)

        async def let_in() -> httpx.Response:
            reply = await http.get(EXECUTIONS, headers=valid)
            assert reply.status_code != 429, "still refused"
            return reply

        reply = await assert_eventually(
            let_in, timeout=window + 5, interval=0.05, what="access after the window"
        )
        assert reply.status_code == 200, reply.text
        assert time.monotonic() - started >= window * 0.9, "let in before the window ended"
        # A new window: the count starts again from zero.
        await fail_auth(http, 2)
        assert (await http.get(EXECUTIONS, headers=valid)).status_code == 200


async def test_successful_authentications_neither_count_nor_reset(db_path: Path) -> None:
    async with (
        limited_server(db_path, auth_failure_limit=3, auth_failure_window=30) as server,
        server.client() as http,
    ):
        valid = {"X-API-Key": server.key}
        for _ in range(20):
            assert (await http.get(EXECUTIONS, headers=valid)).status_code == 200
        await fail_auth(http, 2)
        for _ in range(20):
            assert (await http.get(EXECUTIONS, headers=valid)).status_code == 200
        await fail_auth(http, 1)  # the third failure: the two before still count
        assert_limited(await http.get(EXECUTIONS, headers=valid), 30)


async def test_a_forbidden_request_is_not_an_authentication_failure(db_path: Path) -> None:
    async with (
        limited_server(db_path, auth_failure_limit=2, auth_failure_window=30) as server,
        server.client() as http,
    ):
        key, _ = await server.engine.as_org("acme").create_api_key("viewer", "reader")
        for _ in range(5):
            reply = await http.put(
                "/api/v1/secrets/TOKEN", json={"value": "x"}, headers={"X-API-Key": key}
            )
            assert reply.status_code == 403, reply.text
        assert (await http.get(EXECUTIONS, headers={"X-API-Key": key})).status_code == 200


async def test_forwarded_for_names_the_client_only_behind_a_trusted_proxy(db_path: Path) -> None:
    async with limited_server(
        db_path,
        auth_failure_limit=3,
        auth_failure_window=30,
        trusted_proxies=("127.0.0.1", "10.0.0.0/8"),
    ) as server:
        valid = {"X-API-Key": server.key}
        async with server.client("127.0.0.1") as proxy, server.client("127.0.0.2") as direct:
            # The proxy appends the address it saw; what the client wrote before it is ignored.
            await fail_auth(proxy, 3, **{"X-Forwarded-For": "203.0.113.9, 198.51.100.7"})
            spoofed = {"X-Forwarded-For": "192.0.2.1, 198.51.100.7", **valid}
            assert_limited(await proxy.get(EXECUTIONS, headers=spoofed), 30)
            # A chain of our own proxies: the first untrusted hop from the right.
            chained = {"X-Forwarded-For": "198.51.100.7, 10.1.2.3", **valid}
            assert_limited(await proxy.get(EXECUTIONS, headers=chained), 30)
            neighbour = {"X-Forwarded-For": "198.51.100.8", **valid}
            assert (await proxy.get(EXECUTIONS, headers=neighbour)).status_code == 200
            # Requests from the proxy itself (no header) are the proxy's own.
            assert (await proxy.get(EXECUTIONS, headers=valid)).status_code == 200
            # 127.0.0.2 is no trusted proxy: its header is ignored, it counts as itself.
            await fail_auth(direct, 3, **{"X-Forwarded-For": "198.51.100.99"})
            assert_limited(await direct.get(EXECUTIONS, headers=valid), 30)
            fresh = {"X-Forwarded-For": "198.51.100.99", **valid}
            assert (await proxy.get(EXECUTIONS, headers=fresh)).status_code == 200


async def test_without_trusted_proxies_forwarded_for_cannot_dodge_the_limit(
    db_path: Path,
) -> None:
    async with (
        limited_server(db_path, auth_failure_limit=3, auth_failure_window=30) as server,
        server.client() as http,
    ):
        for number in range(3):
            headers = {"X-Forwarded-For": f"198.51.100.{number}", **wrong_key(number)}
            assert (await http.get(EXECUTIONS, headers=headers)).status_code == 401
        rotated = {"X-Forwarded-For": "198.51.100.200", "X-API-Key": server.key}
        assert_limited(await http.get(EXECUTIONS, headers=rotated), 30)
        assert len(server.limiter()) == 1


async def test_the_server_command_ignores_forwarded_for_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAUSEPOINT_AUTH_FAILURE_LIMIT", "3")
    async with server_process(tmp_path / "xff.db", EXAMPLES, free_port()) as server:
        key = (await server.read_until(KEY)).group(0)
        await wait_healthy(server.base_url)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            for number in range(3):
                headers = {"X-Forwarded-For": f"198.51.100.{number}", **wrong_key(number)}
                assert (await http.get(EXECUTIONS, headers=headers)).status_code == 401
            rotated = {"X-Forwarded-For": "198.51.100.200", "X-API-Key": key}
            assert_limited(await http.get(EXECUTIONS, headers=rotated), 60)


async def test_the_tracked_clients_are_capped(db_path: Path) -> None:
    async with (
        limited_server(
            db_path,
            auth_failure_limit=2,
            auth_failure_window=30,
            auth_failure_clients=10,
            trusted_proxies=("127.0.0.1",),
        ) as server,
        server.client() as http,
    ):
        for number in range(60):
            headers = {"X-Forwarded-For": f"198.51.100.{number}", **wrong_key(number)}
            assert (await http.get(EXECUTIONS, headers=headers)).status_code == 401
        assert len(server.limiter()) == 10
        # The newest are kept: the latest client is one failure away from the limit.
        await fail_auth(http, 1, **{"X-Forwarded-For": "198.51.100.59"})
        limited = {"X-Forwarded-For": "198.51.100.59", "X-API-Key": server.key}
        assert_limited(await http.get(EXECUTIONS, headers=limited), 30)


def test_the_limiter_forgets_the_stalest_client_first() -> None:
    now = [0.0]
    limiter = AuthFailureLimiter(limit=2, window=10, max_clients=3, clock=lambda: now[0])
    for client in ("a", "b", "c"):
        limiter.record_failure(client)
    limiter.record_failure("a")  # "a" is now the freshest, and at the limit
    limiter.record_failure("d")  # evicts "b", the stalest
    assert len(limiter) == 3
    with pytest.raises(Exception, match="too many failed authentications"):
        limiter.check("a")
    limiter.record_failure("b")  # "b" starts again from one failure
    limiter.check("b")
    now[0] = 10.0  # the window of "a" is over
    limiter.check("a")
    for number in range(10_000):
        limiter.record_failure(f"client-{number}")
    assert len(limiter) == 3


def test_the_client_is_the_peer_or_what_a_trusted_proxy_saw() -> None:
    none: tuple[Any, ...] = ()
    proxies = parse_networks(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])
    assert client_key("203.0.113.5", "198.51.100.1", none) == "203.0.113.5"
    assert client_key("203.0.113.5", "198.51.100.1", proxies) == "203.0.113.5"
    assert client_key("127.0.0.1", "198.51.100.1", proxies) == "198.51.100.1"
    assert client_key("127.0.0.1", "198.51.100.1:4433, 10.0.0.2", proxies) == "198.51.100.1"
    assert client_key("127.0.0.1", "10.0.0.3, 10.0.0.2", proxies) == "10.0.0.3"
    assert client_key("127.0.0.1", "", proxies) == "127.0.0.1"
    assert client_key(None, None, none) == "unknown"
    # One host usually holds a whole IPv6 /64: it is one client.
    first = client_key("2001:db8:1:2::1", None, none)
    assert first == client_key("2001:db8:1:2:ffff::9", None, none) == "2001:db8:1:2::/64"
    assert first != client_key("2001:db8:1:3::1", None, none)
    assert client_key("::ffff:198.51.100.4", None, none) == "198.51.100.4"
    assert client_key("127.0.0.1", "[2001:db8::1]:443", proxies) == "2001:db8::/64"
    garbage = client_key("127.0.0.1", "x" * 500, proxies)
    assert len(garbage) <= 64


async def test_a_limit_of_zero_turns_limiting_off(db_path: Path) -> None:
    async with limited_server(db_path, auth_failure_limit=0) as server, server.client() as http:
        await fail_auth(http, 30)
        assert (await http.get(EXECUTIONS, headers={"X-API-Key": server.key})).status_code == 200
        assert len(server.limiter()) == 0


def test_the_limit_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PAUSEPOINT_AUTH_FAILURE_LIMIT", "7")
    monkeypatch.setenv("PAUSEPOINT_AUTH_FAILURE_WINDOW", "12.5")
    monkeypatch.setenv("PAUSEPOINT_AUTH_FAILURE_CLIENTS", "99")
    monkeypatch.setenv("PAUSEPOINT_TRUSTED_PROXIES", '["10.0.0.0/8", "192.0.2.1"]')
    settings = Settings(db=f"sqlite:///{tmp_path / 'x.db'}")
    assert settings.auth_failure_limit == 7
    assert settings.auth_failure_window == 12.5
    assert settings.auth_failure_clients == 99
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.1")
    defaults = Settings.model_fields
    assert defaults["auth_failure_limit"].default == 20
    assert defaults["auth_failure_window"].default == 60.0
    assert defaults["trusted_proxies"].default == ()
    monkeypatch.setenv("PAUSEPOINT_TRUSTED_PROXIES", '["10.0.0.0/8", "proxy.internal"]')
    with pytest.raises(ValidationError, match=r"'proxy\.internal' is not an IP address or network"):
        Settings(db=f"sqlite:///{tmp_path / 'x.db'}")


# -- JWT --------------------------------------------------------------------------------


def ec_private_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def hmac_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes, digest: str) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def bad_rs256_tokens(private_pem: bytes, public_pem: str) -> dict[str, str]:
    now = int(time.time())
    attacker_pem, attacker_public = rsa_keys()
    public_der = serialization.load_pem_public_key(public_pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tokens = {
        "nbf in the future": jwt.encode(claims(nbf=now + 300), private_pem, algorithm="RS256"),
        "exp in the past": jwt.encode(claims(exp=now - 5), private_pem, algorithm="RS256"),
        "exp missing": jwt.encode(claims(exp=None), private_pem, algorithm="RS256"),
        "exp not a number": jwt.encode(claims(exp="never"), private_pem, algorithm="RS256"),
        "exp in the past, as a string": jwt.encode(
            claims(exp=str(now - 5)), private_pem, algorithm="RS256"
        ),
        "nbf in the future, as a string": jwt.encode(
            claims(nbf=str(now + 300)), private_pem, algorithm="RS256"
        ),
        "alg none": hand_signed({"alg": "none", "typ": "JWT"}, claims(), None),
        "alg NONE": hand_signed({"alg": "NONE", "typ": "JWT"}, claims(), None),
        "alg none with an RS256 signature": ".".join(
            [
                b64(json.dumps({"alg": "none"}).encode()),
                *jwt.encode(claims(), private_pem, algorithm="RS256").split(".")[1:],
            ]
        ),
        "alg rs256 (lower case)": ".".join(
            [
                b64(json.dumps({"alg": "rs256", "typ": "JWT"}).encode()),
                *jwt.encode(claims(), private_pem, algorithm="RS256").split(".")[1:],
            ]
        ),
        "RS512 with the right key": jwt.encode(claims(), private_pem, algorithm="RS512"),
        "PS256 with the right key": jwt.encode(claims(), private_pem, algorithm="PS256"),
        "ES256": jwt.encode(claims(), ec_private_pem(), algorithm="ES256"),
        "attacker's key announced in the jwk header": jwt.encode(
            claims(),
            attacker_pem,
            algorithm="RS256",
            headers={
                "jwk": json.loads(
                    jwt.algorithms.RSAAlgorithm.to_jwk(rsa_public_key(attacker_public))
                )
            },
        ),
    }
    # Alg confusion: HMAC keyed with the server's public key, in every form it is published.
    for name, key in {
        "PEM": public_pem.encode(),
        "PEM without its last newline": public_pem.strip().encode(),
        "DER": public_der,
    }.items():
        for alg, digest in (("HS256", "sha256"), ("HS384", "sha384"), ("HS512", "sha512")):
            tokens[f"{alg} keyed with the public key ({name})"] = hmac_signed(
                {"alg": alg, "typ": "JWT"}, claims(role="admin"), key, digest
            )
    return tokens


async def test_an_rs256_server_refuses_every_token_it_did_not_sign_validly(
    db_path: Path,
) -> None:
    private_pem, public_pem = rsa_keys()
    async with (
        running_server(
            db_path, jwt_algorithm="RS256", jwt_key=public_pem, auth_failure_limit=0
        ) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        good = jwt.encode(claims(), private_pem, algorithm="RS256")
        assert (await http.get(EXECUTIONS, headers=bearer(good))).status_code == 200
        for label, token in bad_rs256_tokens(private_pem, public_pem).items():
            for method, body in (
                ("GET", None),
                ("POST", {"namespace": "api.tests", "flow_id": "approval"}),
            ):
                reply = await http.request(method, EXECUTIONS, headers=bearer(token), json=body)
                assert reply.status_code == 401, f"{label}: {method}: {reply.text}"
        listed = await http.get(EXECUTIONS, headers=server.headers("acme", "admin"))
        assert listed.json()["items"] == [], "a refused token started an execution"


async def test_exp_and_nbf_have_no_leeway(db_path: Path) -> None:
    async with (
        running_server(db_path, jwt_key=SECRET, auth_failure_limit=0) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        now = int(time.time())
        for label, token in {
            "expired two seconds ago": hs256(claims(exp=now - 2)),
            "valid from in five seconds": hs256(claims(nbf=now + 5)),
        }.items():
            reply = await http.get(EXECUTIONS, headers=bearer(token))
            assert reply.status_code == 401, f"{label}: {reply.text}"
        fresh = hs256(claims(exp=now + 30, nbf=now - 1))
        assert (await http.get(EXECUTIONS, headers=bearer(fresh))).status_code == 200


# -- API keys ---------------------------------------------------------------------------


def database_bytes(db_path: Path) -> bytes:
    parts = [Path(f"{db_path}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]
    return b"".join(part.read_bytes() for part in parts if part.exists())


async def test_the_database_never_holds_an_api_key_in_plain_text(
    server: RunningServer, db_path: Path
) -> None:
    extra, _ = await server.engine.as_org("acme").create_api_key("operator", "ci")
    keys = [*server.keys.values(), extra]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        for key in keys:
            for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
                assert (await http.get(EXECUTIONS, headers=headers)).status_code == 200
    stored = database_bytes(db_path)
    for key in keys:
        secret_part = key.split("_", 2)[2]
        assert secret_part.encode() not in stored, f"the secret of key {key[:15]}… is stored"
        assert key.encode() not in stored
        # What is stored instead: the hash (so this scan looks at the right bytes).
        assert auth.hash_key(key).encode() in stored, "the scan did not find the key's hash"


async def test_a_wrong_secret_of_the_right_length_is_refused_like_an_unknown_key(
    server: RunningServer,
) -> None:
    key = server.keys["acme:admin"]
    prefix, key_id, secret_part = key.split("_", 2)
    flip = {"A": "B"}.get(secret_part[-1], "A")
    first = {"A": "B"}.get(secret_part[0], "A")
    near_misses = {
        "last character changed": f"{prefix}_{key_id}_{secret_part[:-1]}{flip}",
        "first character changed": f"{prefix}_{key_id}_{first}{secret_part[1:]}",
        "same length, all different": f"{prefix}_{key_id}_{'Z' * len(secret_part)}",
        "secret of another key": f"{prefix}_{key_id}_"
        + server.keys["globex:admin"].split("_", 2)[2],
    }
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        unknown = await http.get(
            EXECUTIONS, headers={"X-API-Key": f"pp_{'0' * 12}_{'Z' * len(secret_part)}"}
        )
        assert unknown.status_code == 401
        for label, candidate in near_misses.items():
            assert len(candidate) == len(key), label
            reply = await http.get(EXECUTIONS, headers={"X-API-Key": candidate})
            assert reply.status_code == 401, f"{label}: {reply.text}"
            assert reply.json() == unknown.json(), label
        assert (await http.get(EXECUTIONS, headers={"X-API-Key": key})).status_code == 200


async def test_key_digests_are_compared_in_constant_time_even_for_unknown_ids(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[str, str]] = []
    real_compare = hmac.compare_digest

    def recording_compare(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording_compare)  # what auth calls
    key, record = await engine.create_api_key("operator", "timing")
    authenticator = engine.authenticator
    wrong = f"pp_{record.id}_{'Q' * len(key.split('_', 2)[2])}"
    unknown = f"pp_{'f' * 12}_{'Q' * 43}"
    for candidate in (wrong, unknown):
        with pytest.raises(Exception, match="invalid API key"):
            await authenticator.authenticate(api_key=candidate, authorization=None)
    principal = await authenticator.authenticate(api_key=key, authorization=None)
    assert principal.subject == f"key:{record.id}"
    assert [a for a, _ in compared] == [auth.hash_key(c) for c in (wrong, unknown, key)]
    assert compared[0][1] == compared[2][1] == record.hash


# -- tenancy -----------------------------------------------------------------------------

VOLATILE_HEADERS = {"date", "x-request-id", "content-length"}


def comparable(reply: httpx.Response, ids: list[str]) -> tuple[int, str, dict[str, str]]:
    headers = {
        name: scrub(value, ids)
        for name, value in reply.headers.items()
        if name not in VOLATILE_HEADERS
    }
    return reply.status_code, scrub(reply.text, ids), headers


async def test_another_orgs_ids_look_unknown_to_every_role_in_status_body_and_headers(
    db_path: Path,
) -> None:
    async with (
        gated_server(db_path, jwt_key=SECRET, auth_failure_limit=0) as server,
        server.client("acme", "admin") as acme,
    ):
        ids = await acme_resources(server, acme)
        spec = (await acme.get("/openapi.json")).json()
        callers = {
            **{
                f"globex {role} key": server.headers("globex", role)
                for role in ("viewer", "operator", "admin")
            },
            "globex JWT": bearer(hs256(claims(org="globex", role="admin", sub="eve@globex"))),
        }
        checked = 0
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            for method, path, operation in operations(spec):
                if not path_params(path) or method in UPSERTS:
                    continue
                theirs = ids.fill(path, operation, real=True)
                unknown = ids.fill(path, operation, real=False)
                assert theirs is not None and unknown is not None, path
                if not theirs[1]:
                    continue
                kwargs = request_body(operation, spec)
                extra = kwargs.pop("headers", {})
                for label, credentials in callers.items():
                    headers = {"Accept": "application/json", **extra, **credentials}
                    cross = await http.request(method, theirs[0], headers=headers, **kwargs)
                    random = await http.request(method, unknown[0], headers=headers, **kwargs)
                    assert_sane(cross)
                    assert cross.status_code in (403, 404), f"{label} {method} {path}: {cross.text}"
                    assert comparable(cross, theirs[1]) == comparable(random, unknown[1]), (
                        f"{label} tells another org's id from an unknown one on {method} {path}:\n"
                        f"  theirs:  {cross.status_code} {dict(cross.headers)} {cross.text}\n"
                        f"  unknown: {random.status_code} {dict(random.headers)} {random.text}"
                    )
                    checked += 1
        assert checked >= 4 * 15, checked
        assert (await state_of(acme, ids.execution_id))["state"] == "RUNNING"
        assert await audit(acme, ids.execution_id) == []


# -- audit ---------------------------------------------------------------------------------


@dataclass
class Expected:
    execution_id: str
    kind: str
    actor: str
    request_id: str
    route: str


async def test_every_control_request_is_audited_with_its_actor_result_and_request_id(
    db_path: Path,
) -> None:
    async with (
        gated_server(db_path, jwt_key=SECRET) as server,
        server.client() as setup,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        key = server.keys["acme:operator"]
        key_actor = f"key:{key.split('_')[1]}"
        as_key = {"X-API-Key": key}
        as_jwt = bearer(hs256(claims(sub="alice@acme", role="operator")))
        expected: list[Expected] = []

        async def running() -> str:
            name = gates.new_key("audit")
            execution_id = await start(setup, "slow", {"key": name})
            await wait_started(name)
            return execution_id

        async def control(
            execution_id: str | list[str],
            route: str,
            kind: str,
            credentials: dict[str, str],
            body: dict[str, Any] | None = None,
            status: int = 202,
        ) -> None:
            request_id = f"req-{uuid.uuid4().hex[:12]}"
            headers = {**credentials, "X-Request-ID": request_id}
            reply = await http.post(route, json=body or {}, headers=headers)
            assert reply.status_code == status, f"{route}: {reply.text}"
            assert reply.headers["x-request-id"] == request_id
            actor = key_actor if credentials is as_key else "alice@acme"
            targets = execution_id if isinstance(execution_id, list) else [execution_id]
            if isinstance(execution_id, list):
                assert all(item["status"] in (200, 202) for item in reply.json()["results"]), (
                    reply.text
                )
            for target in targets:
                expected.append(Expected(target, kind, actor, request_id, route))

        async def settled(execution_id: str, *states: str) -> None:
            await wait_settled(setup, execution_id)
            await wait_state(setup, execution_id, *states)

        one = await running()
        base = f"{EXECUTIONS}/{one}"
        message = {"message": "note", "role": "user"}
        await control(one, f"{base}/inject", "inject", as_key, message)
        await control(one, f"{base}/message", "inject", as_jwt, message)  # Kubiya
        await control(one, f"/executions/{one}/inject", "inject", as_key, message)  # Syntropic
        await control(one, f"{base}/pause", "pause", as_jwt, {"reason": "look"})
        await settled(one, "PAUSING")
        await control(one, f"{base}/resume", "resume", as_key)
        await settled(one, "RUNNING")
        await control(one, f"/api/v1/tasks/{one}/pause", "pause", as_key)  # Shannon
        await settled(one, "PAUSING")
        await control(one, f"/api/v1/tasks/{one}/resume", "resume", as_jwt)
        await settled(one, "RUNNING")
        await control(one, f"/executions/{one}/pause", "pause", as_jwt)
        await settled(one, "PAUSING")
        await control(one, f"/executions/{one}/resume", "resume", as_key)
        await settled(one, "RUNNING")
        await control(one, f"{base}/cancel", "cancel", as_jwt, {"reason": "done"})

        two, three, four = await running(), await running(), await running()
        await control(
            two, f"{EXECUTIONS}/{two}/terminate", "terminate", as_key, {"reason": "x"}, 200
        )
        await control(three, f"/api/v1/tasks/{three}/cancel", "cancel", as_jwt)
        await control(four, f"/executions/{four}/cancel", "cancel", as_key)

        five, six = await running(), await running()
        bulk = f"{EXECUTIONS}/bulk"
        await control([five, six], f"{bulk}/pause", "pause", as_key, {"ids": [five, six]}, 200)
        for execution_id in (five, six):
            await settled(execution_id, "PAUSING")
        await control([five, six], f"{bulk}/resume", "resume", as_jwt, {"ids": [five, six]}, 200)
        for execution_id in (five, six):
            await settled(execution_id, "RUNNING")
        await control([five], f"{bulk}/cancel", "cancel", as_jwt, {"ids": [five]}, 200)
        await control(
            [six], f"{bulk}/terminate", "terminate", as_key, {"ids": [six], "reason": "x"}, 200
        )

        routes = {e.route.replace(e.execution_id, "{id}") for e in expected}
        assert len(routes) >= 17, sorted(routes)
        for execution_id in (one, two, three, four, five, six):
            commands = await wait_settled(setup, execution_id)
            mine = [e for e in expected if e.execution_id == execution_id]
            seen = [(c["kind"], c["actor"], c["request_id"]) for c in commands]
            assert seen == [(e.kind, e.actor, e.request_id) for e in mine], (
                f"{execution_id}: audit {seen}\nexpected {mine}"
            )
            for command in commands:
                assert command["status"] == "applied", command
                assert command["state_after"], command
                assert command["applied_at"], command
