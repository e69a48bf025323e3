"""API keys and secrets of an organization."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path

from pausepoint.errors import FieldError, InvalidInput, NotFound
from pausepoint.service.auth import Authenticator, JwtSettings, check_role, new_api_key
from pausepoint.service.core import DEFAULT_ORG, SECRET_NAME, SECRETS_CACHE_SECONDS, EngineCore
from pausepoint.service.secretbox import SecretBox
from pausepoint.store.access import ApiKeyRecord
from pausepoint.store.sql import sqlite_path


class AccessLayer(EngineCore):
    @functools.cached_property
    def secret_box(self) -> SecretBox:
        path = sqlite_path(self.settings.db)
        key_file = (path.parent if path else Path.cwd()) / ".pausepoint-secrets.key"
        return SecretBox.from_settings(self.settings.secrets_key, key_file)

    @property
    def authenticator(self) -> Authenticator:
        """One per engine, shared with its per-organization views (it caches verifications)."""
        if self._shared.authenticator is None:
            jwt_settings = None
            if self.settings.jwt_key:
                jwt_settings = JwtSettings(
                    self.settings.jwt_algorithm, self.settings.jwt_key, self.settings.jwt_audience
                )
            self._shared.authenticator = Authenticator(self.store, jwt_settings)
        return self._shared.authenticator

    # -- keys and secrets ----------------------------------------------------------

    async def create_api_key(
        self, role: str, name: str = "", *, user: str | None = None, groups: Sequence[str] = ()
    ) -> tuple[str, ApiKeyRecord]:
        """A new API key for this organization; the key itself is returned once, never stored.

        With ``user`` the key acts as that person (the actor of what it does), a
        member of ``groups``; bad names are ``InvalidInput`` naming the field.
        """
        key, record = new_api_key(
            self.org_id, check_role(role), name or role, self.clock(), user=user, groups=groups
        )
        await self.store.create_api_key(record)
        return key, record

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return await self.store.list_api_keys(self.org_id)

    async def revoke_api_key(self, key_id: str) -> None:
        if not await self.store.revoke_api_key(key_id, self.clock(), self.org_id):
            raise NotFound(f"API key {key_id} not found (or already revoked)")
        self.authenticator.forget_verified()

    async def bootstrap_admin_key(self) -> str | None:
        """On a database without any key, create an admin key for the default org (once)."""
        if await self.store.count_api_keys():
            return None
        key, _ = await self.as_org(DEFAULT_ORG).create_api_key("admin", "bootstrap admin")
        return key

    async def put_secret(self, name: str, value: str) -> None:
        """Store a secret, sealed; templates read it as ``{{ secrets.NAME }}``."""
        if not SECRET_NAME.match(name):
            raise InvalidInput(
                f"secret name {name!r} must be letters, digits and underscores",
                [FieldError(("path", "name"), "letters, digits and underscores", "pattern")],
            )
        await self.store.put_secret(self.org_id, name, self.secret_box.seal(value), self.clock())
        self._forget_secrets()

    async def delete_secret(self, name: str) -> None:
        if not await self.store.delete_secret(self.org_id, name):
            raise NotFound(f"secret {name} not found")
        self._forget_secrets()

    async def secret_names(self) -> list[str]:
        return list(await self.store.sealed_secrets(self.org_id))

    def _forget_secrets(self) -> None:
        """After a change: the next use reads them again (a read in progress is not reused)."""
        self._shared.org_secrets.pop(self.org_id, None)
        self._shared.secrets_loading.pop(self.org_id, None)

    async def _secrets_for(self, org_id: str) -> dict[str, str]:
        cached = self._shared.org_secrets.get(org_id)
        if cached is not None and self.clock() - cached[0] < SECRETS_CACHE_SECONDS:
            return cached[1]
        # One read per organization at a time: when the cache runs out under load, a
        # thousand executions starting at once wait for the same read.
        loading = self._shared.secrets_loading.get(org_id)
        if loading is None:
            loading = asyncio.ensure_future(self._read_secrets(org_id))
            self._shared.secrets_loading[org_id] = loading
        return await asyncio.shield(loading)

    async def _read_secrets(self, org_id: str) -> dict[str, str]:
        now = self.clock()
        try:
            # SECRET_* environment variables belong to the default organization only:
            # one tenant must never read another's.
            values = dict(self._secrets) if org_id == DEFAULT_ORG else {}
            for name, (sealed, _) in (await self.store.sealed_secrets(org_id)).items():
                values[name] = self.secret_box.open(sealed)
        finally:
            mine = self._shared.secrets_loading.get(org_id) is asyncio.current_task()
            if mine:
                del self._shared.secrets_loading[org_id]
        if mine:  # not changed meanwhile
            self._shared.org_secrets[org_id] = (now, values)
        return values
