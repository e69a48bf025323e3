"""Who is calling, for which organization, and what they may do.

Callers present an API key (``X-API-Key: …`` or ``Authorization: Bearer …``)
or a JWT bearer token. The seed systems' clients send the same key their own way:
Kubiya's as ``Authorization: UserKey <key>``, Kestra's as HTTP Basic with the
key as the password (the user name is ignored). API keys are long random tokens
shown once; only their SHA-256 is stored, and comparison is constant-time.
JWTs are verified with the configured key, the algorithm pinned, and ``exp``,
``sub``, ``org`` and ``role`` required.

A caller may be a person in groups: a key issued for a user acts as that user
(its subject) with the key's groups; a JWT's optional ``groups`` claim gives
its groups. Approvals count people and groups, not keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import jwt

from pausepoint.errors import FieldError, Forbidden, InvalidInput, Unauthorized
from pausepoint.store.access import ApiKeyRecord
from pausepoint.store.sql import SqlStore

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
KEY_PREFIX = "pp"
# Verified API keys are remembered this long: a key revoked through this process stops
# working at once, one revoked by another process sharing the database (the CLI's
# ``keys revoke``, another HTTP worker of ``server --workers``) within this many seconds.
KEY_CACHE_SECONDS = 1.0
# At most this many verified keys are remembered (the least recently used go first).
KEY_CACHE_SIZE = 10_000
# User and group names: what people and directories use, nothing that needs quoting,
# and ASCII only: a look-alike letter must not make a second "alice" for a quorum.
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,100}")
NAME_RULE = "1 to 100 letters, digits or . _ @ -"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    org_id: str
    role: Role
    # The key's user, "key:<id>" for a key without one, or the JWT's sub: recorded as
    # the actor of commands.
    subject: str
    groups: tuple[str, ...] = ()

    def can(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def require(self, role: Role, action: str) -> None:
        """Raise ``Forbidden`` (403) unless the caller has at least ``role``."""
        if not self.can(role):
            raise Forbidden(f"{action} needs the {role} role; this caller is a {self.role}")


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return role


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_user(user: str) -> str:
    """``user`` if it is a valid user name; ``InvalidInput`` naming the field otherwise."""
    if not _NAME.fullmatch(user):
        message = f"user {user!r} must be {NAME_RULE}"
        raise InvalidInput(message, [FieldError(("user",), message, "pattern")])
    return user


def check_groups(groups: Sequence[str]) -> tuple[str, ...]:
    """The group names, each once and in order; ``InvalidInput`` naming the bad one."""
    if isinstance(groups, str):  # a str is a Sequence[str]: "ops" would be three groups
        message = "groups must be a list of names, not one string"
        raise InvalidInput(message, [FieldError(("groups",), message, "type")])
    for index, group in enumerate(groups):
        if not isinstance(group, str) or not _NAME.fullmatch(group):
            message = f"groups[{index}] {group!r} must be {NAME_RULE}"
            raise InvalidInput(message, [FieldError(("groups", index), message, "pattern")])
    return tuple(dict.fromkeys(groups))


def new_api_key(
    org_id: str,
    role: Role,
    name: str,
    now: float,
    *,
    user: str | None = None,
    groups: Sequence[str] = (),
) -> tuple[str, ApiKeyRecord]:
    """A new key (to show once) and the record to store (its hash, never the key).

    With ``user`` the key acts as that person; ``groups`` are theirs. Both are
    checked (``InvalidInput`` naming the field).
    """
    if user is not None:
        check_user(user)
    checked_groups = check_groups(groups)
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(
        key_id, org_id, role, name, hash_key(key), now, None, user=user, groups=checked_groups
    )
    return key, record


@dataclass(frozen=True)
class JwtSettings:
    algorithm: str  # "HS256" or "RS256"
    key: str  # the HS256 secret or the RS256 public key (PEM)
    audience: str | None = None


class Authenticator:
    """Turns request credentials into a :class:`Principal`, or raises ``Unauthorized``."""

    def __init__(
        self,
        store: SqlStore,
        jwt_settings: JwtSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.jwt = jwt_settings
        self.clock = clock
        # Verified API keys by the SHA-256 of the key presented (never the key itself),
        # each until its deadline (KEY_CACHE_SECONDS): every request authenticates, and a
        # store lookup per request was a third of a control request's cost. Failures are
        # not remembered: a key created a moment ago works at once.
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._forgotten = 0  # how many times forget_verified ran

    def forget_verified(self) -> None:
        """Drop every remembered verification (a key was revoked in this process)."""
        self._verified.clear()
        self._forgotten += 1

    async def authenticate(self, *, api_key: str | None, authorization: str | None) -> Principal:
        token = api_key
        if token is None and authorization:
            token = token_of(authorization)
        if not token:
            raise Unauthorized("authentication required: send an API key or a bearer token")
        if token.startswith(f"{KEY_PREFIX}_"):
            return await self._api_key(token)
        return self._jwt(token)

    async def _api_key(self, key: str) -> Principal:
        digest = hash_key(key)
        cached = self._verified.get(digest)
        if cached is not None:
            if cached[0] > self.clock():
                self._verified.move_to_end(digest)
                return cached[1]
            del self._verified[digest]  # expired: verified again, against the store
        forgotten = self._forgotten
        principal = await self._verify_api_key(key, digest)
        if forgotten == self._forgotten:  # no revocation meanwhile: the answer still holds
            self._verified[digest] = (self.clock() + KEY_CACHE_SECONDS, principal)
            while len(self._verified) > KEY_CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    async def _verify_api_key(self, key: str, digest: str) -> Principal:
        parts = key.split("_", 2)
        record = await self.store.get_api_key(parts[1]) if len(parts) == 3 else None
        # Compare even when the id is unknown, so timing does not tell ids apart.
        expected = record.hash if record is not None else hash_key("")
        if not hmac.compare_digest(digest, expected) or record is None:
            raise Unauthorized("invalid API key")
        if record.revoked_at is not None:
            raise Unauthorized("this API key was revoked")
        subject = record.user or f"key:{record.id}"
        return Principal(record.org_id, check_role(record.role), subject, record.groups)

    def _jwt(self, token: str) -> Principal:
        if self.jwt is None:
            raise Unauthorized("invalid credentials (JWT is not enabled on this server)")
        try:
            claims = jwt.decode(
                token,
                self.jwt.key,
                algorithms=[self.jwt.algorithm],
                audience=self.jwt.audience,
                options={"require": ["exp", "sub", "org", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise Unauthorized(f"invalid token: {error}") from None
        role = claims.get("role")
        if role not in ROLES or not isinstance(claims.get("org"), str):
            raise Unauthorized("invalid token: 'role' must be viewer, operator or admin")
        groups = claims.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise Unauthorized("invalid token: 'groups' must be a list of names")
        return Principal(str(claims["org"]), role, str(claims["sub"]), tuple(dict.fromkeys(groups)))


AUTHORIZATION_SCHEMES = (
    "'Authorization: Bearer <API key or JWT>', 'UserKey <API key>', "
    "'Basic' with the API key as the password, or X-API-Key"
)


def token_of(authorization: str) -> str:
    """The API key or JWT in an ``Authorization`` header, whichever scheme carries it."""
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    match scheme.lower():
        case "bearer" | "userkey" if value:
            return value
        case "basic" if value:
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthorized("malformed Basic credentials: not base64 'user:key'") from None
            _, colon, password = decoded.partition(":")
            if colon and password:
                return password
            raise Unauthorized("Basic credentials carry the API key as the password")
    raise Unauthorized(f"use {AUTHORIZATION_SCHEMES}")


def local_admin(org_id: str = "default") -> Principal:
    """The in-process caller of the Python API and the local CLI: full rights."""
    return Principal(org_id, "admin", "local")
