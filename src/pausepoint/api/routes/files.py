"""Internal storage over HTTP: store a namespace's file, read an execution's files.

``PUT /api/v1/namespaces/{namespace}/files?path=items.txt`` takes the file as
the raw body or as the multipart part ``fileContent`` (Kestra's form) and
answers its ``kestra:///`` URI, to pass as a FILE input. ``GET
/api/v1/executions/{id}/file?path=kestra:///...`` answers a file's bytes (a
batch of a ForEachItem, the subflows' merged outputs, an uploaded input).
Kestra's tenant forms of both are in ``routes/kestra.py``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from pausepoint.api.deps import Caller, call
from pausepoint.api.kestra_shapes import FORM_TYPES, form_parts, media_type
from pausepoint.errors import FieldError, InvalidInput
from pausepoint.service.auth import Principal
from pausepoint.service.operations import (
    GetExecutionRequest,
    PutNamespaceFileRequest,
    ReadFileRequest,
)

router = APIRouter(prefix="/api/v1", tags=["files"])

FILE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The file: the raw body, or the multipart part fileContent.",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"fileContent": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


class StoredFile(BaseModel):
    uri: str


# Optional in the signature so that a caller without the role hears 403 before anything
# about the request (the route says when it is missing).
Path = Annotated[str | None, Query(max_length=900, description="a/b.txt (required)")]
StorageUri = Annotated[str | None, Query(max_length=1024, description="kestra:///... (required)")]


async def store_namespace_file(
    request: Request, caller: Principal, namespace: str, path: str | None
) -> str:
    content: bytes | None = await request.body()
    content_type = request.headers.get("content-type", "")
    if content and media_type(content_type) in FORM_TYPES:
        caller.require(PutNamespaceFileRequest.required_role, PutNamespaceFileRequest.action)
        _, files = form_parts(content, content_type)
        sent = files.get("fileContent")
        content = None if sent is None else sent.content  # None: the engine names the part
    elif media_type(content_type) in FORM_TYPES:
        content = None
    operation = PutNamespaceFileRequest(namespace=namespace, path=path, content=content)
    return await call(request, caller, operation)


async def execution_file(
    request: Request, caller: Principal, execution_id: str, uri: str | None
) -> Response:
    await call(request, caller, GetExecutionRequest(execution_id=execution_id))  # 404 if none
    if not uri:
        message = "path is required: the file's kestra:/// URI"
        raise InvalidInput(message, [FieldError(("query", "path"), message, "missing")])
    content = await call(request, caller, ReadFileRequest(uri=uri))
    name = uri.rsplit("/", 1)[-1]
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.put("/namespaces/{namespace}/files", openapi_extra=FILE_BODY)
async def put_namespace_file(
    request: Request, namespace: str, caller: Caller, path: Path = None
) -> StoredFile:
    """Store (or replace) a file of the namespace; its URI is what a FILE input takes."""
    return StoredFile(uri=await store_namespace_file(request, caller, namespace, path))


@router.get(
    "/executions/{execution_id}/file",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_execution_file(
    request: Request, execution_id: str, caller: Caller, path: StorageUri = None
) -> Response:
    """A file an execution reads or wrote, by its ``kestra:///`` URI."""
    return await execution_file(request, caller, execution_id, path)
