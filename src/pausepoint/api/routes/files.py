"""Internal storage over HTTP: store a namespace's file, read an execution's files.

``POST /api/v1/namespaces/{namespace}/files?path=items.txt`` takes the file as
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


Path = Annotated[str, Query(min_length=1, max_length=900, description="a/b.txt")]
StorageUri = Annotated[str, Query(min_length=1, max_length=1024, description="kestra:///...")]


async def store_namespace_file(
    request: Request, caller: Principal, namespace: str, path: str
) -> str:
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if media_type(content_type) in FORM_TYPES:
        _, files = form_parts(body, content_type)
        sent = files.get("fileContent")
        if sent is None:
            message = "send the file as the multipart part 'fileContent'"
            raise InvalidInput(message, [FieldError(("body", "fileContent"), message)])
        body = sent.content
    operation = PutNamespaceFileRequest(namespace=namespace, path=path, content=body)
    return await call(request, caller, operation)


async def execution_file(
    request: Request, caller: Principal, execution_id: str, uri: str
) -> Response:
    await call(request, caller, GetExecutionRequest(execution_id=execution_id))  # 404 if none
    content = await call(request, caller, ReadFileRequest(uri=uri))
    name = uri.rsplit("/", 1)[-1]
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/namespaces/{namespace}/files", openapi_extra=FILE_BODY)
async def put_namespace_file(
    request: Request, namespace: str, path: Path, caller: Caller
) -> StoredFile:
    """Store a file of the namespace; its URI is what a FILE input takes."""
    return StoredFile(uri=await store_namespace_file(request, caller, namespace, path))


@router.get(
    "/executions/{execution_id}/file",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_execution_file(
    request: Request, execution_id: str, path: StorageUri, caller: Caller
) -> Response:
    """A file an execution reads or wrote, by its ``kestra:///`` URI."""
    return await execution_file(request, caller, execution_id, path)
