"""Internal storage: the files flows read and write by URI (``kestra:///...``).

A namespace's own files (``put_namespace_file``), files sent as FILE inputs
with a start (``put_upload``), and reading any of them back (``read_file``),
each within the engine's organization. Tasks write theirs through
``service/taskcontrol.py``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from pausepoint.errors import FieldError, InvalidInput, NotFound
from pausepoint.service.flows import FlowsLayer
from pausepoint.storage import (
    MAX_FILE_BYTES,
    StorageError,
    check_uri,
    namespace_file_uri,
    namespace_root,
    upload_uri,
)


class FilesLayer(FlowsLayer):
    async def put_namespace_file(
        self, namespace: str, path: str | None, content: bytes | None
    ) -> str:
        """Store ``content`` as ``path`` of ``namespace``; its URI, to pass as a FILE input.

        The namespace is one the organization has flows in: any other is "not found"
        (as another organization's is).
        """
        flows = await self.store.list_flows(self.org_id)
        if not any(flow.namespace == namespace for flow in flows):
            raise NotFound(f"namespace {namespace!r} not found (it has no flows)")
        if not path:
            message = "path is required: where in the namespace the file goes (a/b.txt)"
            raise InvalidInput(message, [FieldError(("query", "path"), message, "missing")])
        _checked(lambda: namespace_root(namespace), ("path", "namespace"))
        uri = _checked(lambda: namespace_file_uri(namespace, path), ("query", "path"))
        if content is None:
            message = "send the file as the multipart part 'fileContent'"
            raise InvalidInput(message, [FieldError(("body", "fileContent"), message)])
        return await self._put(uri, content)

    async def put_upload(
        self,
        namespace: str,
        flow_id: str,
        input_id: str,
        file_name: str,
        content: bytes,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        """Store a file sent as the FILE input ``input_id`` of a start of the flow; its URI.

        With the start's ``idempotency_key``, the URI derives from the key and the
        content: a retried start sends the same inputs and replays; a start that reuses
        the key with another file gets another URI (and is refused) without touching
        the first one's file.
        """
        if idempotency_key is None:
            token = secrets.token_hex(8)
        else:
            digest = hashlib.sha256(f"{idempotency_key}\0{input_id}\0".encode() + content)
            token = digest.hexdigest()[:16]
        uri = _checked(
            lambda: upload_uri(namespace, flow_id, token, input_id, file_name),
            ("body", "inputs", input_id),
        )
        return await self._put(uri, content)

    async def read_file(self, uri: str) -> bytes:
        """The content stored at ``uri``; NotFound when nothing is."""
        _checked(lambda: check_uri(uri), ("query", "path"))
        content = await self.store.get_file(self.org_id, uri)
        if content is None:
            raise NotFound(f"no file is stored at {uri}")
        return content

    async def _put(self, uri: str, content: bytes) -> str:
        if len(content) > MAX_FILE_BYTES:
            message = f"the file is {len(content)} bytes; at most {MAX_FILE_BYTES} are stored"
            raise InvalidInput(message, [FieldError(("body",), message)])
        await self.store.put_file(self.org_id, uri, content, self.clock())
        return uri


def _checked(build: Callable[[], str], loc: tuple[str | int, ...]) -> str:
    try:
        return build()
    except StorageError as error:
        raise InvalidInput(str(error), [FieldError(loc, str(error))]) from None
