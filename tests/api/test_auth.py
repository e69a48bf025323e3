"""Authentication and roles over real HTTP (ARCHITECTURE.md §6).

Every route the live ``/openapi.json`` lists refuses a caller without valid
credentials (401) and every write route refuses a viewer (403) before it
changes anything. API keys: missing, malformed, wrong, revoked; a key issued
for a user acts as that user, in its groups. JWT: a valid token acts for its
organization and role (and its ``groups``); expired, not yet valid, forged,
``alg: none``, the wrong algorithm and missing or malformed claims are 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pausepoint.errors import InvalidInput
from pausepoint.service import auth
from pausepoint.service.auth import KEY_CACHE_SECONDS
from pausepoint.service.engine import Engine
from pausepoint.store.access import ApiKeyRecord
from tests.api.conftest import RunningServer, running_server
from tests.api.matrix_support import (
    assert_sane,
    audit,
    gated_server,
    gates,
    operations,
    request_body,
    start,
    state_of,
    wait_started,
)

# Routes anyone may call: probes, the API description, Kestra's webhooks (whose key
# in the URL is the secret; test_triggers_api proves a wrong key starts nothing) and
# callback tokens (the token is the credential; test_callbacks proves a forged one does
# nothing).
PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/",
    "/api/v1/executions/webhook/{namespace}/{flow_id}/{key}",
    "/api/v1/{tenant}/executions/webhook/{namespace}/{flow_id}/{key}",
    "/api/v1/callbacks/{token}",
    "/api/v1/callbacks/{token}/heartbeat",
}
SECRET = "test-hmac-secret-" + "0123456789abcdef" * 4  # long enough for HS512 too


def filled(path: str, operation: dict[str, Any], execution_id: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        for parameter in operation.get("parameters", []):
            if parameter["name"] == name and parameter.get("schema", {}).get("enum"):
                return str(parameter["schema"]["enum"][0])
        return {
            "namespace": "api.tests",
            "flow_id": "approval",
            "name": "SOME_SECRET",
            "key_id": "0123456789ab",
            "tenant": "acme",  # Kestra's routes: the organization of the keys used here
        }.get(name, execution_id)

    return re.sub(r"{([^}]+)}", value, path)


def body_for(path: str, operation: dict[str, Any], spec: dict[str, Any], execution_id: str) -> Any:
    if "/bulk/" in path:
        return {"json": {"ids": [execution_id], "reason": "auth"}}
    if path.endswith("/resume"):
        return {"json": {}}
    return request_body(operation, spec)


def message_of(reply: httpx.Response) -> Any:
    """The error message: ours in ``detail``, Shannon's compatible routes in ``error``,
    Kestra's in ``message``."""
    body = reply.json()
    return body.get("detail", body.get("error", body.get("message")))


async def live_spec(server: RunningServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        spec: dict[str, Any] = (await http.get("/openapi.json")).json()
        return spec


async def running_execution(http: httpx.AsyncClient) -> str:
    key = gates.new_key("auth")
    execution_id = await start(http, "slow", {"key": key})
    await wait_started(key)
    return execution_id


# -- every route ----------------------------------------------------------------------


async def test_every_private_route_is_401_without_valid_credentials(db_path: Path) -> None:
    async with (
        gated_server(db_path, auth_failure_limit=0) as server,
        server.client("acme", "operator") as acme,
    ):
        execution_id = await running_execution(acme)
        spec = await live_spec(server)
        wrong_secret = f"pp_{server.keys['acme:admin'].split('_')[1]}_{'A' * 43}"
        credentials: dict[str, dict[str, str]] = {
            "none": {},
            "empty key": {"X-API-Key": ""},
            "basic auth": {"Authorization": "Basic YWRtaW46YWRtaW4="},
            "bearer without token": {"Authorization": "Bearer"},
            "token scheme": {"Authorization": f"Token {server.keys['acme:admin']}"},
            "wrong secret": {"X-API-Key": wrong_secret},
            "unknown key": {"Authorization": f"Bearer pp_ffffffffffff_{'B' * 43}"},
            "truncated key": {"X-API-Key": server.keys["acme:admin"][:-1]},
            "garbage bearer": {"Authorization": "Bearer not-a-key-or-a-token"},
        }
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as anonymous:
            checked = 0
            for method, path, operation in operations(spec):
                if path in PUBLIC:
                    continue
                url = filled(path, operation, execution_id)
                kwargs = body_for(path, operation, spec, execution_id)
                for label, headers in credentials.items():
                    headers = {**headers, "Accept": "application/json"}
                    extra = kwargs.get("headers", {})
                    call = {k: v for k, v in kwargs.items() if k != "headers"}
                    reply = await anonymous.request(
                        method, url, headers={**headers, **extra}, **call
                    )
                    where = f"{method} {path} with {label}: {reply.status_code} {reply.text}"
                    assert_sane(reply)
                    assert reply.status_code == 401, where
                    assert reply.headers.get("www-authenticate", "").lower().startswith("bearer"), (
                        where
                    )
                    assert isinstance(message_of(reply), str), where
                checked += 1
            assert checked >= 10
        assert (await state_of(acme, execution_id))["state"] == "RUNNING"
        assert await audit(acme, execution_id) == []


async def test_every_private_operation_documents_the_credential_headers(
    server: RunningServer,
) -> None:
    """The routes read ``X-API-Key`` and ``Authorization`` themselves (not as FastAPI
    parameters): the API description still names both, last, on every private operation."""
    spec = await live_spec(server)
    checked = 0
    for method, path, operation in operations(spec):
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        if path in PUBLIC:
            assert "x-api-key" not in headers, (method, path)
            continue
        assert headers[-2:] == ["x-api-key", "authorization"], (method, path, headers)
        assert "422" in operation["responses"], (method, path)
        checked += 1
    assert checked > 50


async def test_a_known_key_id_with_a_wrong_secret_looks_like_an_unknown_key(
    server: RunningServer,
) -> None:
    key_id = server.keys["acme:admin"].split("_")[1]
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        wrong = await http.get("/api/v1/executions", headers={"X-API-Key": f"pp_{key_id}_xyz"})
        unknown = await http.get("/api/v1/executions", headers={"X-API-Key": "pp_000000000000_xyz"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_unauthenticated_malformed_json_is_401_not_422(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        reply = await http.post(
            "/api/v1/executions",
            content=b"{broken",
            headers={"Content-Type": "application/json"},
        )
    assert reply.status_code == 401, reply.text


WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


async def test_a_viewer_is_403_on_every_write_route_and_nothing_changes(db_path: Path) -> None:
    async with (
        gated_server(db_path) as server,
        server.client("acme", "operator") as operator,
        server.client("acme", "viewer") as viewer,
    ):
        execution_id = await running_execution(operator)
        await server.engine.as_org("acme").put_secret("SOME_SECRET", "value")
        spec = await live_spec(server)
        forbidden: list[str] = []
        for method, path, operation in operations(spec):
            # Dry-run validations change nothing; reading them is not writing. Public routes
            # (webhooks) answer everyone alike.
            if method not in WRITE_METHODS or path.endswith("/validate") or path in PUBLIC:
                continue
            kwargs = body_for(path, operation, spec, execution_id)
            url = filled(path, operation, execution_id)
            reply = await viewer.request(method, url, **kwargs)
            where = f"{method} {path}: {reply.status_code} {reply.text}"
            assert_sane(reply)
            assert reply.status_code == 403, where
            if "detail" in reply.json():  # the seeds' own shapes say only "Forbidden"
                assert "viewer" in reply.json()["detail"], where
            forbidden.append(f"{method} {path}")
        assert "POST /api/v1/executions" in forbidden
        assert "POST /api/v1/executions/{execution_id}/terminate" in forbidden

        assert (await state_of(viewer, execution_id))["state"] == "RUNNING"
        assert await audit(viewer, execution_id) == []
        assert "SOME_SECRET" in await server.engine.as_org("acme").secret_names()
        assert any(f.flow_id == "approval" for f in await server.engine.as_org("acme").list_flows())
        # Reading is what a viewer may do.
        assert (await viewer.get(f"/api/v1/executions/{execution_id}")).status_code == 200


async def test_an_operator_cannot_manage_flows_or_secrets(server: RunningServer) -> None:
    async with server.client("acme", "operator") as operator:
        flow = await operator.put(
            "/api/v1/flows/api.tests/approval",
            content=b"id: approval\nnamespace: api.tests\ntasks: []\n",
            headers={"Content-Type": "application/x-yaml"},
        )
        secret = await operator.put("/api/v1/secrets/TOKEN", json={"value": "x"})
    assert flow.status_code == 403, flow.text
    assert secret.status_code == 403, secret.text


# -- API keys ---------------------------------------------------------------------------


async def test_a_revoked_key_is_401_and_only_its_own_org_can_revoke_it(
    server: RunningServer,
) -> None:
    key, record = await server.engine.as_org("acme").create_api_key("operator", "short-lived")
    async with httpx.AsyncClient(base_url=server.base_url, headers={"X-API-Key": key}) as http:
        assert (await http.get("/api/v1/executions")).status_code == 200

        with pytest.raises(Exception, match="not found"):
            await server.engine.as_org("globex").revoke_api_key(record.id)
        assert (await http.get("/api/v1/executions")).status_code == 200

        await server.engine.as_org("acme").revoke_api_key(record.id)
        for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
            reply = await http.get("/api/v1/executions", headers=headers)
            assert reply.status_code == 401, reply.text
            assert "revoked" in reply.json()["detail"]
        started = await http.post(
            "/api/v1/executions", json={"namespace": "api.tests", "flow_id": "approval"}
        )
        assert started.status_code == 401, started.text


class FakeClock:
    """The authenticator's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_revoked_by_another_process_is_refused_once_its_verification_expires(
    server: RunningServer, db_path: Path
) -> None:
    """Verified keys are remembered for KEY_CACHE_SECONDS; a revocation written by another
    process sharing the database (the CLI, another HTTP worker) is seen once that ends."""
    clock = FakeClock()
    server.engine.authenticator.clock = clock
    key, record = await server.engine.as_org("acme").create_api_key("operator", "elsewhere")
    async with httpx.AsyncClient(base_url=server.base_url, headers={"X-API-Key": key}) as http:
        assert (await http.get("/api/v1/executions")).status_code == 200
        async with Engine(server.engine.settings) as other_process:
            await other_process.revoke_key_of_any_org(record.id)
        clock.now += KEY_CACHE_SECONDS / 2
        # Within the window a request may still pass; after it, none does.
        assert (await http.get("/api/v1/executions")).status_code == 200
        clock.now += KEY_CACHE_SECONDS
        for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
            reply = await http.get("/api/v1/executions", headers=headers)
            assert reply.status_code == 401, reply.text
            assert "revoked" in reply.json()["detail"]


async def test_a_key_revoked_while_it_is_being_verified_is_not_remembered_as_valid(
    server: RunningServer,
) -> None:
    engine = server.engine
    key, record = await engine.as_org("acme").create_api_key("operator", "racing")
    authenticator = engine.authenticator
    store = authenticator.store
    read = store.get_api_key

    async def revoked_meanwhile(key_id: str) -> ApiKeyRecord | None:
        found = await read(key_id)  # still valid when read...
        await engine.as_org("acme").revoke_api_key(record.id)  # ...revoked before the reply
        return found

    store.get_api_key = revoked_meanwhile  # type: ignore[method-assign]
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            first = await http.get("/api/v1/executions", headers={"X-API-Key": key})
            assert first.status_code == 200  # verified before the revocation landed
    finally:
        store.get_api_key = read  # type: ignore[method-assign]
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        again = await http.get("/api/v1/executions", headers={"X-API-Key": key})
        assert again.status_code == 401, again.text


async def test_verified_keys_are_remembered_up_to_a_bound_least_recently_used_first(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "KEY_CACHE_SIZE", 2)
    server.engine.authenticator.clock = FakeClock()  # nothing expires meanwhile
    store = server.engine.authenticator.store
    read = store.get_api_key
    looked_up: list[str] = []

    async def counted(key_id: str) -> ApiKeyRecord | None:
        looked_up.append(key_id)
        return await read(key_id)

    monkeypatch.setattr(store, "get_api_key", counted)
    viewer, operator, admin = (server.keys[f"acme:{role}"] for role in auth.ROLES)
    async with httpx.AsyncClient(base_url=server.base_url) as http:

        async def lookups(key: str) -> int:
            before = len(looked_up)
            reply = await http.get("/api/v1/executions", headers={"X-API-Key": key})
            assert reply.status_code == 200
            return len(looked_up) - before

        assert [await lookups(key) for key in (viewer, operator, viewer, admin)] == [1, 1, 0, 1]
        # The operator's was the least recently used of the three: it alone was forgotten.
        assert [await lookups(key) for key in (viewer, admin, operator)] == [0, 0, 1]


async def test_a_key_issued_for_a_user_acts_as_that_user_in_its_groups(
    server: RunningServer,
) -> None:
    key, record = await server.engine.as_org("acme").create_api_key(
        "operator", "alice's laptop", user="alice@acme", groups=["ops", "security", "ops"]
    )
    assert (record.user, record.groups) == ("alice@acme", ("ops", "security"))
    async with httpx.AsyncClient(
        base_url=server.base_url, headers={"X-API-Key": key}, timeout=30
    ) as http:
        me = await http.get("/api/v1/me")
        assert me.json() == {
            "org": "acme",
            "role": "operator",
            "subject": "alice@acme",
            "groups": ["ops", "security"],
        }
        started = await http.post(
            "/api/v1/executions", json={"namespace": "api.tests", "flow_id": "approval"}
        )
        assert started.status_code == 201, started.text
        execution_id = started.json()["id"]
        cancelled = await http.post(
            f"/api/v1/executions/{execution_id}/cancel", json={"reason": "by alice"}
        )
        assert cancelled.status_code == 202, cancelled.text
        commands = (await http.get(f"/api/v1/executions/{execution_id}/audit")).json()
    assert [(c["kind"], c["actor"]) for c in commands] == [("cancel", "alice@acme")]


@pytest.mark.parametrize(
    ("user", "groups", "field"),
    [
        ("alice smith", [], "user"),
        ("", [], "user"),
        ("a" * 101, [], "user"),
        ("jürgen", [], "user"),  # ASCII only: no look-alike of another person's name
        (None, ["ops", "on call"], "groups[1]"),
        (None, [""], "groups[0]"),
        (None, ["ops/admin"], "groups[0]"),
        (None, "ops", "groups"),
    ],
)
async def test_a_bad_user_or_group_name_is_refused_naming_the_field(
    engine: Engine, user: str | None, groups: Any, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await engine.create_api_key("operator", user=user, groups=groups)
    assert str(refused.value).startswith(f"{field} "), str(refused.value)
    assert refused.value.errors[0].loc[0] == field.partition("[")[0]
    assert await engine.list_api_keys() == []


async def test_a_key_works_as_a_bearer_token_too(server: RunningServer) -> None:
    key = server.keys["globex:viewer"]
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        reply = await http.get("/api/v1/executions", headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 200, reply.text


async def test_a_key_works_as_kubiya_userkey_and_as_kestra_basic_password(
    server: RunningServer,
) -> None:
    key = server.keys["globex:viewer"]
    basic = base64.b64encode(f"anyone:{key}".encode()).decode()
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        for authorization in (f"UserKey {key}", f"Basic {basic}"):
            reply = await http.get("/api/v1/me", headers={"Authorization": authorization})
            assert reply.status_code == 200, (authorization, reply.text)
            assert reply.json()["org"] == "globex"
        refused = {
            "Basic not-base64!": "malformed Basic credentials",
            f"Basic {base64.b64encode(key.encode()).decode()}": "as the password",
            "UserKey": "UserKey <API key>",
        }
        for authorization, says in refused.items():
            reply = await http.get("/api/v1/me", headers={"Authorization": authorization})
            assert reply.status_code == 401, (authorization, reply.text)
            assert says in reply.json()["detail"], reply.text


# -- JWT --------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": "alice@acme",
        "org": "acme",
        "role": "operator",
        "exp": now + 300,
        "iat": now,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=alg)


def hand_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A token built by hand: ``key`` None gives the empty signature of ``alg: none``."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if key is None:
        return f"{signing_input}."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def rsa_keys() -> tuple[bytes, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_hs256_token_acts_for_its_org_and_role(db_path: Path) -> None:
    async with (
        running_server(db_path, jwt_key=SECRET) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        started = await http.post(
            "/api/v1/executions",
            json={"namespace": "api.tests", "flow_id": "approval"},
            headers=bearer(hs256(claims())),
        )
        assert started.status_code == 201, started.text
        execution_id = started.json()["id"]

        as_acme_viewer = bearer(hs256(claims(role="viewer", sub="victor@acme")))
        seen = await http.get("/api/v1/executions", headers=as_acme_viewer)
        assert execution_id in seen.text
        refused = await http.post(
            f"/api/v1/executions/{execution_id}/cancel", json={}, headers=as_acme_viewer
        )
        assert refused.status_code == 403, refused.text

        as_globex = bearer(hs256(claims(org="globex", role="admin", sub="mallory@globex")))
        assert (
            await http.get(f"/api/v1/executions/{execution_id}", headers=as_globex)
        ).status_code == 404
        assert execution_id not in (await http.get("/api/v1/executions", headers=as_globex)).text

        cancelled = await http.post(
            f"/api/v1/executions/{execution_id}/cancel",
            json={"reason": "by token"},
            headers=bearer(hs256(claims())),
        )
        assert cancelled.status_code == 202, cancelled.text
        commands = (
            await http.get(f"/api/v1/executions/{execution_id}/audit", headers=as_acme_viewer)
        ).json()
        assert [(c["kind"], c["actor"]) for c in commands] == [("cancel", "alice@acme")]
        # API keys keep working beside JWTs.
        keyed = await http.get("/api/v1/executions", headers=server.headers("acme", "viewer"))
        assert keyed.status_code == 200


def bad_hs256_tokens() -> dict[str, str]:
    now = int(time.time())
    private_pem, _ = rsa_keys()
    valid = hs256(claims())
    header, payload, signature = valid.split(".")
    admin_payload = b64(json.dumps(claims(role="admin")).encode())
    return {
        "expired": hs256(claims(exp=now - 30)),
        "not yet valid (nbf)": hs256(claims(nbf=now + 300)),
        "wrong secret": hs256(claims(), secret="another-secret-of-at-least-32-bytes!!"),
        "alg none": hand_signed({"alg": "none", "typ": "JWT"}, claims(), None),
        "alg None": hand_signed({"alg": "None", "typ": "JWT"}, claims(), None),
        "alg none with a signature": hand_signed({"alg": "none"}, claims(), SECRET.encode()),
        "RS256-signed": jwt.encode(claims(), private_pem, algorithm="RS256"),
        "HS512 with the right secret": hs256(claims(), alg="HS512"),
        "tampered payload": f"{header}.{admin_payload}.{signature}",
        "no signature": f"{header}.{payload}.",
        "missing exp": hs256(claims(exp=None)),
        "missing sub": hs256(claims(sub=None)),
        "missing org": hs256(claims(org=None)),
        "missing role": hs256(claims(role=None)),
        "unknown role": hs256(claims(role="root")),
        "org not a string": hs256(claims(org=["acme", "globex"])),
        "groups not a list": hs256(claims(groups="ops")),
        "two segments": f"{header}.{payload}",
    }


async def test_bad_tokens_are_401(db_path: Path) -> None:
    async with (
        running_server(db_path, jwt_key=SECRET, auth_failure_limit=0) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        for label, token in bad_hs256_tokens().items():
            for method, path, body in (
                ("GET", "/api/v1/executions", None),
                ("POST", "/api/v1/executions", {"namespace": "api.tests", "flow_id": "approval"}),
            ):
                reply = await http.request(method, path, headers=bearer(token), json=body)
                assert reply.status_code == 401, f"{label}: {method} {path}: {reply.text}"
                assert isinstance(reply.json()["detail"], str), reply.text
        listed = await http.get("/api/v1/executions", headers=server.headers("acme", "admin"))
        assert listed.json()["items"] == [], "a refused token started an execution"


async def test_a_tokens_groups_claim_gives_the_callers_groups(db_path: Path) -> None:
    async with (
        running_server(db_path, jwt_key=SECRET, auth_failure_limit=0) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        me = await http.get("/api/v1/me", headers=bearer(hs256(claims(groups=["ops", "sec"]))))
        assert me.json() == {
            "org": "acme",
            "role": "operator",
            "subject": "alice@acme",
            "groups": ["ops", "sec"],
        }
        without = await http.get("/api/v1/me", headers=bearer(hs256(claims())))
        assert without.json()["groups"] == []
        for groups in ("ops", ["ops", 1], {"ops": True}):
            reply = await http.get("/api/v1/me", headers=bearer(hs256(claims(groups=groups))))
            assert reply.status_code == 401, (groups, reply.text)
            assert reply.json()["detail"] == "invalid token: 'groups' must be a list of names"


async def test_jwt_is_refused_when_the_server_has_no_jwt_key(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        reply = await http.get("/api/v1/executions", headers=bearer(hs256(claims())))
    assert reply.status_code == 401, reply.text


async def test_rs256_server_takes_its_key_pair_only(db_path: Path) -> None:
    private_pem, public_pem = rsa_keys()
    other_private, _ = rsa_keys()
    async with (
        running_server(db_path, jwt_algorithm="RS256", jwt_key=public_pem) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        good = jwt.encode(claims(), private_pem, algorithm="RS256")
        assert (await http.get("/api/v1/executions", headers=bearer(good))).status_code == 200
        # Key confusion: an HS256 token whose HMAC key is the server's public key.
        confused = hand_signed({"alg": "HS256", "typ": "JWT"}, claims(), public_pem.encode())
        for label, token in {
            "HS256 keyed with the public key": confused,
            "signed by another key": jwt.encode(claims(), other_private, algorithm="RS256"),
            "alg none": hand_signed({"alg": "none"}, claims(), None),
            "expired": jwt.encode(
                claims(exp=int(time.time()) - 30), private_pem, algorithm="RS256"
            ),
        }.items():
            reply = await http.get("/api/v1/executions", headers=bearer(token))
            assert reply.status_code == 401, f"{label}: {reply.text}"


async def test_audience_is_checked_when_configured(db_path: Path) -> None:
    async with (
        running_server(db_path, jwt_key=SECRET, jwt_audience="pausepoint-api") as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        right = hs256(claims(aud="pausepoint-api"))
        assert (await http.get("/api/v1/executions", headers=bearer(right))).status_code == 200
        for token in (hs256(claims(aud="another-api")), hs256(claims())):
            reply = await http.get("/api/v1/executions", headers=bearer(token))
            assert reply.status_code == 401, reply.text
