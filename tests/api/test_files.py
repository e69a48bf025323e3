"""Internal storage over HTTP, against a real server on loopback: namespace files stored
raw or as Kestra's ``fileContent`` part, a FILE input uploaded with Kestra's start form
and cut into batches by a ForEachItem, files read back by URI (native and Kestra routes),
bad input answered with a 4xx naming the place, and each organization's files its own.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pausepoint.testing import assert_eventually
from tests.api.conftest import RunningServer
from tests.api.kestra_errors import assert_kestra_error

VALIDS = Path(__file__).parents[1] / "kestra" / "valids"
NAMESPACE = "io.kestra.tests"
# ForEachItemCaseTest's items: 102 numbers, each left-padded to 20 characters, a line each.
ITEMS = "".join(f"{n:>20}\n" for n in range(102)).encode()
LINE = 21  # bytes per item line
ITEMS_URI = "kestra:///io/kestra/tests/_files/file/storage/items.txt"
UPLOAD_URI = re.compile(
    r"kestra:///io/kestra/tests/for-each-item/executions/uploads/[0-9a-f]+/file/items\.txt"
)
BATCH_URI = re.compile(
    r"kestra:///io/kestra/tests/for-each-item/executions/[0-9a-f]+/tasks/each-split/[^/]+/[^/]+"
)
TERMINAL = {"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"}
OCTETS = {"Content-Type": "application/octet-stream"}
YAML = {"Content-Type": "application/x-yaml"}
FILE_FLOW = f"""
id: file-input
namespace: {NAMESPACE}
inputs:
  - id: file
    type: FILE
tasks:
  - id: echo
    type: return
    format: "{{{{ inputs.file }}}}"
"""


@pytest.fixture
async def main_http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An admin of the default organization: Kestra's tenant ``main``."""
    key, _ = await server.engine.as_org("default").create_api_key("admin", "kestra main")
    async with httpx.AsyncClient(
        base_url=server.base_url, headers={"X-API-Key": key}, timeout=30
    ) as http:
        yield http


# -- helpers ------------------------------------------------------------------------------


async def put_file(
    http: httpx.AsyncClient, path: str, content: bytes, namespace: str = NAMESPACE
) -> httpx.Response:
    return await http.put(
        f"/api/v1/namespaces/{namespace}/files",
        params={"path": path},
        content=content,
        headers=OCTETS,
    )


async def read_file(http: httpx.AsyncClient, execution_id: str, uri: str) -> httpx.Response:
    return await http.get(f"/api/v1/executions/{execution_id}/file", params={"path": uri})


async def start_approval(http: httpx.AsyncClient) -> str:
    """An execution of conftest's flow, to read files through."""
    reply = await http.post(
        "/api/v1/executions", json={"namespace": "api.tests", "flow_id": "approval"}
    )
    assert reply.status_code == 201, reply.text
    execution_id: str = reply.json()["id"]
    return execution_id


async def create_flow(http: httpx.AsyncClient, tenant: str, source: str) -> None:
    reply = await http.post(f"/api/v1/{tenant}/flows", content=source, headers=YAML)
    assert reply.status_code == 200, reply.text


async def wait_ended(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def ended() -> bool:
        reply = await http.get(f"/api/v1/executions/{execution_id}")
        assert reply.status_code == 200, reply.text
        seen.clear()
        seen.update(reply.json())
        return seen["state"] in TERMINAL

    await assert_eventually(ended, timeout=60, what=f"execution {execution_id} ended")
    return seen


def run_of(view: dict[str, Any], task_id: str) -> dict[str, Any]:
    """The one task run of ``task_id`` (iterations left out)."""
    runs: list[dict[str, Any]] = [
        r for r in view["task_runs"] if r["task_id"] == task_id and r["type"] != "iteration"
    ]
    assert len(runs) == 1, [(r["task_id"], r["type"]) for r in view["task_runs"]]
    return runs[0]


def assert_native_error(reply: httpx.Response, status: int, *loc: str) -> dict[str, Any]:
    """A native error: its status, and (for invalid input) the one field it names."""
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    if loc:
        assert [tuple(e["loc"]) for e in body["detail"]] == [loc], body
    return body


def multipart(name: str, file_name: str, content: bytes) -> tuple[bytes, dict[str, str]]:
    """One file part, byte for byte the same each time it is built (a fixed boundary)."""
    boundary = "pausepoint-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{name}"; filename="{file_name}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# -- storing namespace files -----------------------------------------------------------------


async def with_namespace(server: RunningServer, *orgs: str) -> None:
    """Files go into a namespace the organization has flows in."""
    for org in orgs:
        await server.engine.as_org(org).put_flow(FILE_FLOW)


async def test_a_namespace_file_is_stored_raw_or_as_the_part_file_content(
    server: RunningServer,
) -> None:
    await with_namespace(server, "acme")
    async with server.client("acme", "operator") as http:
        raw = await put_file(http, "file/storage/items.txt", b"raw body\n")
        assert raw.status_code == 200, raw.text
        assert raw.json() == {"uri": ITEMS_URI}
        execution_id = await start_approval(http)
        assert (await read_file(http, execution_id, ITEMS_URI)).content == b"raw body\n"

        # Kestra's form: the multipart part fileContent; it replaces what was there.
        form = await http.put(
            f"/api/v1/namespaces/{NAMESPACE}/files",
            params={"path": "file/storage/items.txt"},
            files={"fileContent": ("items.txt", ITEMS, "text/plain")},
        )
        assert form.status_code == 200, form.text
        assert form.json() == {"uri": ITEMS_URI}
        stored = await read_file(http, execution_id, ITEMS_URI)
        assert stored.status_code == 200, stored.text
        assert stored.content == ITEMS
        assert stored.headers["content-type"] == "application/octet-stream"
        assert stored.headers["content-disposition"] == 'attachment; filename="items.txt"'

        # The same under Kestra's tenant path (acme's own name is its tenant).
        tenant = await http.post(
            f"/api/v1/acme/namespaces/{NAMESPACE}/files",
            params={"path": "other/b.txt"},
            files={"fileContent": ("b.txt", b"bee", "text/plain")},
        )
        assert tenant.status_code == 200, tenant.text
        assert tenant.json() == {"uri": "kestra:///io/kestra/tests/_files/other/b.txt"}
        kestra_read = await http.get(
            f"/api/v1/acme/executions/{execution_id}/file", params={"path": tenant.json()["uri"]}
        )
        assert (kestra_read.status_code, kestra_read.content) == (200, b"bee")

    # A viewer reads files (an execution's reads are theirs to see).
    async with server.client("acme", "viewer") as viewer:
        assert (await read_file(viewer, execution_id, ITEMS_URI)).content == ITEMS


# -- a FILE input uploaded with Kestra's start form -----------------------------------------


async def test_kestra_start_with_an_uploaded_file_runs_a_for_each_item(
    main_http: httpx.AsyncClient,
) -> None:
    http = main_http
    for name in ("for-each-item-subflow.yaml", "for-each-item.yaml"):
        await create_flow(http, "main", (VALIDS / name).read_text())

    started = await http.post(
        f"/api/v1/main/executions/{NAMESPACE}/for-each-item",
        files={"file": ("items.txt", ITEMS, "text/plain")},
    )
    assert started.status_code == 200, started.text
    execution_id: str = started.json()["id"]
    uri = started.json()["inputs"]["file"]
    assert UPLOAD_URI.fullmatch(uri), uri

    view = await wait_ended(http, execution_id)
    assert view["state"] == "COMPLETED", view["error"]
    assert view["inputs"] == {"file": uri}
    outputs = run_of(view, "each_items")["outputs"]
    assert outputs["numberOfBatches"] == 26
    assert outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 26}

    # The uploaded input, byte for byte, through Kestra's route and the native one.
    kestra = await http.get(f"/api/v1/main/executions/{execution_id}/file", params={"path": uri})
    assert kestra.status_code == 200, kestra.text
    assert kestra.content == ITEMS
    native = await read_file(http, execution_id, uri)
    assert native.status_code == 200, native.text
    assert native.content == ITEMS

    # The batches of 4 lines the split wrote, each a subflow's ``items``.
    batches = run_of(view, "each_split")["outputs"]["batches"]
    assert len(batches) == 26
    assert all(BATCH_URI.fullmatch(batch) for batch in batches), batches
    first = await http.get(
        f"/api/v1/main/executions/{execution_id}/file", params={"path": batches[0]}
    )
    assert first.status_code == 200, first.text
    assert first.content == ITEMS[: 4 * LINE]
    last = await read_file(http, execution_id, batches[-1])
    assert last.content == ITEMS[100 * LINE :]  # the last 2 lines
    children = view["children"]
    assert len(children) == 26
    assert all(child["state"] == "COMPLETED" for child in children)
    items_of: dict[str, str] = {}
    for child in children:
        child_view = (await http.get(f"/api/v1/executions/{child['id']}")).json()
        assert child_view["parent_id"] == execution_id
        items_of[child_view["inputs"]["items"]] = child["id"]
    assert sorted(items_of) == sorted(batches)  # a subflow per batch
    # A subflow reads its batch through its own execution too.
    through_child = await read_file(http, items_of[batches[0]], batches[0])
    assert through_child.content == ITEMS[: 4 * LINE]


# -- bad input ------------------------------------------------------------------------------


async def test_bad_input_is_a_4xx_naming_the_place(server: RunningServer) -> None:
    await with_namespace(server, "acme")
    async with server.client("acme", "operator") as http:
        # A namespace the organization has no flows in is not found.
        nowhere = await put_file(http, "a.txt", b"x", namespace="no.such.namespace")
        assert "no.such.namespace" in assert_native_error(nowhere, 404)["detail"]
        stored = await put_file(http, "good.txt", b"good")
        assert stored.status_code == 200, stored.text
        execution_id = await start_approval(http)

        # ".." (or ".") in a path is refused, not resolved.
        for path in ("../escape.txt", "a/../../b.txt", "a/./b.txt"):
            up = await put_file(http, path, b"x")
            assert "'..'" in up.text or "'.'" in up.text, up.text
            assert_native_error(up, 422, "query", "path")
        kestra_up = await http.post(
            f"/api/v1/acme/namespaces/{NAMESPACE}/files",
            params={"path": "../escape.txt"},
            files={"fileContent": ("x", b"x")},
        )
        assert_kestra_error(kestra_up, 422, "query.path")
        no_path = await http.put(f"/api/v1/namespaces/{NAMESPACE}/files", content=b"x")
        assert_native_error(no_path, 422, "query", "path")

        # A multipart body without the part fileContent (a plain field of that name neither).
        for files in (
            {"file": ("x.txt", b"x")},
            {"fileContent": (None, "not a file part")},
        ):
            missing = await http.put(
                f"/api/v1/namespaces/{NAMESPACE}/files", params={"path": "x.txt"}, files=files
            )
            assert "fileContent" in missing.text
            assert_native_error(missing, 422, "body", "fileContent")
        kestra_missing = await http.post(
            f"/api/v1/acme/namespaces/{NAMESPACE}/files",
            params={"path": "x.txt"},
            files={"file": ("x.txt", b"x")},
        )
        assert_kestra_error(kestra_missing, 422, "fileContent")

        # GET file: a path that is no kestra:/// URI, or one with ".." in it.
        for uri in (
            "https://example.com/items.txt",
            "/io/kestra/tests/_files/good.txt",
            "kestra:///io/kestra/tests/_files/../_files/good.txt",
        ):
            bad = await read_file(http, execution_id, uri)
            assert_native_error(bad, 422, "query", "path")
            kestra_bad = await http.get(
                f"/api/v1/acme/executions/{execution_id}/file", params={"path": uri}
            )
            assert_kestra_error(kestra_bad, 422, "query.path")

        # A URI with nothing stored at it.
        nothing = "kestra:///io/kestra/tests/_files/nothing.txt"
        absent = assert_native_error(await read_file(http, execution_id, nothing), 404)
        assert nothing in absent["detail"]
        kestra_absent = await http.get(
            f"/api/v1/acme/executions/{execution_id}/file", params={"path": nothing}
        )
        assert nothing in assert_kestra_error(kestra_absent, 404)["message"]

        # An unknown execution, even for a file that is stored.
        good = stored.json()["uri"]
        unknown = assert_native_error(await read_file(http, "no-such-id", good), 404)
        assert "no-such-id" in unknown["detail"]
        kestra_unknown = await http.get(
            "/api/v1/acme/executions/no-such-id/file", params={"path": good}
        )
        assert "no-such-id" in assert_kestra_error(kestra_unknown, 404)["message"]

        # A file part for an input whose name cannot be a storage path segment.
        bad_name = await http.post(
            "/api/v1/acme/executions/api.tests/approval",
            files={"my input": ("x.txt", b"x")},
        )
        assert_kestra_error(bad_name, 422, "inputs.my input")

        # Still there, unchanged.
        assert (await read_file(http, execution_id, good)).content == b"good"

    async with server.client("acme", "viewer") as viewer:
        forbidden = await put_file(viewer, "good.txt", b"overwritten")
        assert "operator" in assert_native_error(forbidden, 403)["detail"]
        kestra_forbidden = await viewer.post(
            f"/api/v1/acme/namespaces/{NAMESPACE}/files",
            params={"path": "good.txt"},
            files={"fileContent": ("good.txt", b"overwritten")},
        )
        assert_kestra_error(kestra_forbidden, 403)
        # The role is checked first: a viewer's bad request is still a 403.
        assert_native_error(await put_file(viewer, "../x", b"x"), 403)
        start = await viewer.post(
            "/api/v1/acme/executions/io.kestra.tests/file-input", files={"file": ("x", b"x")}
        )
        assert_kestra_error(start, 403)
        assert (await read_file(viewer, execution_id, good)).content == b"good"


# -- tenancy --------------------------------------------------------------------------------


async def test_an_organizations_files_are_its_own(server: RunningServer) -> None:
    await with_namespace(server, "acme", "globex")
    async with server.client("acme", "operator") as acme:
        mine = await put_file(acme, "secret/plans.txt", b"acme's plans")
        assert mine.status_code == 200, mine.text
        uri = mine.json()["uri"]
        acme_execution = await start_approval(acme)
    async with server.client("globex", "operator") as globex:
        globex_execution = await start_approval(globex)
        # Through its own execution, acme's URI holds nothing for globex.
        hidden = await read_file(globex, globex_execution, uri)
        assert uri in assert_native_error(hidden, 404)["detail"]
        kestra_hidden = await globex.get(
            f"/api/v1/globex/executions/{globex_execution}/file", params={"path": uri}
        )
        assert_kestra_error(kestra_hidden, 404)
        # Through acme's execution: no such execution, under either tenant.
        assert_native_error(await read_file(globex, acme_execution, uri), 404)
        for tenant in ("globex", "acme", "main"):
            other = await globex.get(
                f"/api/v1/{tenant}/executions/{acme_execution}/file", params={"path": uri}
            )
            assert_kestra_error(other, 404)
            stored = await globex.post(
                f"/api/v1/{tenant}/namespaces/{NAMESPACE}/files",
                params={"path": "secret/plans.txt"},
                files={"fileContent": ("plans.txt", b"globex's plans")},
            )
            if tenant == "globex":
                assert stored.json() == {"uri": uri}  # the same address, its own file
            else:
                assert_kestra_error(stored, 404)
        assert (await read_file(globex, globex_execution, uri)).content == b"globex's plans"
    async with server.client("acme", "viewer") as acme:
        assert (await read_file(acme, acme_execution, uri)).content == b"acme's plans"


# -- retries ---------------------------------------------------------------------------------


async def test_a_retried_kestra_start_with_a_file_replays(
    main_http: httpx.AsyncClient,
) -> None:
    await create_flow(main_http, "main", FILE_FLOW)
    body, headers = multipart("file", "items.txt", ITEMS)
    headers["Idempotency-Key"] = "upload-once"
    path = f"/api/v1/main/executions/{NAMESPACE}/file-input"
    first = await main_http.post(path, content=body, headers=headers)
    assert first.status_code == 200, first.text
    again = await main_http.post(path, content=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    # The key with another file is refused, and the first start's file is untouched.
    other_body, other_headers = multipart("file", "items.txt", b"other\n")
    other_headers["Idempotency-Key"] = "upload-once"
    refused = await main_http.post(path, content=other_body, headers=other_headers)
    assert refused.status_code == 422, refused.text
    uri = first.json()["inputs"]["file"]
    execution = first.json()["id"]
    kept = await main_http.get(f"/api/v1/main/executions/{execution}/file", params={"path": uri})
    assert kept.content == ITEMS
