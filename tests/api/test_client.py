"""pausepoint.AsyncClient and pausepoint.Client against a real server over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from pausepoint import (
    AsyncClient,
    Client,
    Conflict,
    ControlResult,
    EventView,
    ExecutionView,
    FlowError,
    Forbidden,
    InvalidInput,
    NotFound,
    StateView,
    Unauthorized,
)
from pausepoint.api.schemas import TerminateReply
from pausepoint.client import ConnectionFailed, PayloadTooLarge, ServerError, UnexpectedStatus
from tests.api.conftest import RunningServer, free_port

NS = "api.tests"

GREETING = """
id: greeting
namespace: client.tests
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: hello
    type: return
    format: "hello {{ inputs.name }}"
"""


@contextlib.asynccontextmanager
async def connect(
    server: RunningServer, org: str = "acme", role: str = "admin", url: str | None = None
) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(url or server.base_url, api_key=server.keys[f"{org}:{role}"]) as client:
        yield client


@contextlib.contextmanager
def connect_sync(
    server: RunningServer, org: str = "acme", role: str = "admin", url: str | None = None
) -> Iterator[Client]:
    with Client(url or server.base_url, api_key=server.keys[f"{org}:{role}"]) as client:
        yield client


async def paused_execution(client: AsyncClient, **labels: str) -> ExecutionView:
    started = await client.start(NS, "approval", inputs={"amount": 5}, labels=labels)
    return await client.wait(started.id, until="PAUSED", timeout=10)


# -- flows ----------------------------------------------------------------------------------------


async def test_flows_apply_list_get_validate_and_delete(
    server: RunningServer, tmp_path: Path
) -> None:
    async with connect(server) as client:
        first = await client.apply_flow(GREETING)
        assert (first.namespace, first.id, first.revision) == ("client.tests", "greeting", 1)
        path = tmp_path / "greeting.yaml"
        path.write_text(GREETING.replace('"hello {{', '"hi {{'))
        second = await client.apply_flow(path)
        assert second.revision == 2

        listed = {(f.namespace, f.id): f.revision for f in await client.flows()}
        assert listed[("client.tests", "greeting")] == 2
        latest = await client.flow("client.tests", "greeting")
        assert "hi {{ inputs.name }}" in latest.source
        assert latest.task_ids == ["hello"]
        old = await client.flow("client.tests", "greeting", revision=1)
        assert "hello {{ inputs.name }}" in old.source

        checked = await client.validate_flow(GREETING)
        assert (checked.valid, checked.namespace, checked.id) == (True, "client.tests", "greeting")
        broken = GREETING.replace("type: return", "type: no.such.Task")
        with pytest.raises(FlowError) as invalid:
            await client.validate_flow(broken)
        assert invalid.value.errors and "no.such.Task" in str(invalid.value)
        with pytest.raises(FlowError):
            await client.apply_flow(broken)
        with pytest.raises(FlowError, match="cannot read"):
            await client.apply_flow(tmp_path / "missing.yaml")

        await client.delete_flow("client.tests", "greeting")
        with pytest.raises(NotFound):
            await client.flow("client.tests", "greeting")
        with pytest.raises(NotFound):
            await client.delete_flow("client.tests", "greeting")


async def test_only_admins_manage_flows(server: RunningServer) -> None:
    async with connect(server, role="operator") as client:
        with pytest.raises(Forbidden):
            await client.apply_flow(GREETING)


# -- executions -----------------------------------------------------------------------------------


async def test_start_get_state_and_list_with_cursor_pagination(server: RunningServer) -> None:
    async with connect(server, role="operator") as client:
        started = [
            await client.start(NS, "approval", labels={"batch": "b1", "n": str(n)})
            for n in range(5)
        ]
        assert all(isinstance(s, ExecutionView) and s.namespace == NS for s in started)
        ids = [s.id for s in started]

        page = await client.list_executions(labels={"batch": "b1"}, limit=2)
        assert len(page.items) == 2 and page.next_cursor is not None
        assert [e.id for e in page.items] == ids[::-1][:2]  # newest first
        walked = [e.id async for e in client.iter_executions(labels={"batch": "b1"}, page_size=2)]
        assert walked == ids[::-1]
        only = await client.list_executions(labels={"batch": "b1", "n": "3"})
        assert [e.id for e in only.items] == [ids[3]]

        view = await client.wait(ids[0], until="PAUSED", timeout=10)
        assert view.pause_points and view.pause_points[0].on_resume_schema
        state = await client.state(ids[0])
        assert isinstance(state, StateView) and state.state == "PAUSED"
        assert (await client.execution(ids[0])).task_run("prepare").outputs

        paused = await client.list_executions(
            state="paused", namespace=NS, flow_id="approval", labels={"n": "0"}
        )
        assert [e.id for e in paused.items] == [ids[0]]


async def test_start_validates_inputs_and_flow(server: RunningServer) -> None:
    async with connect(server, role="operator") as client:
        with pytest.raises(InvalidInput) as bad:
            await client.start(NS, "approval", inputs={"amount": "many"})
        assert any(e.loc[-1] == "amount" for e in bad.value.errors)
        with pytest.raises(NotFound):
            await client.start(NS, "no-such-flow")


# -- control --------------------------------------------------------------------------------------


async def test_resume_with_inputs_then_audit(server: RunningServer) -> None:
    async with connect(server, role="operator") as client:
        execution = await paused_execution(client)
        pause_id = execution.pause_points[0].id

        checked = await client.validate_resume(execution.id, {"approved": "yes"})
        assert checked.inputs["approved"] is True
        with pytest.raises(InvalidInput) as invalid:
            await client.validate_resume(execution.id, {"approved": "maybe"})
        assert invalid.value.errors[0].loc == ("body", "inputs", "approved")
        with pytest.raises(InvalidInput):
            await client.resume(execution.id, {"approved": "maybe"})

        result = await client.resume(
            execution.id, {"approved": True}, pause_id=pause_id, reason="looks fine"
        )
        assert isinstance(result, ControlResult) and result.success
        done = await client.wait(execution.id, timeout=10)
        assert done.state == "COMPLETED"
        assert done.outputs is not None or done.task_run("done").outputs

        audit = await client.audit(execution.id)
        assert [(c.kind, c.reason, c.state_before) for c in audit] == [
            ("resume", "looks fine", "PAUSED")  # inputs that do not validate change nothing
        ]


async def test_pause_inject_cancel_terminate(server: RunningServer) -> None:
    async with connect(server, role="operator") as client:
        execution = await paused_execution(client)
        injected = await client.inject(execution.id, "please hurry", role="system")
        assert injected.success
        view = await client.execution(execution.id)
        assert [(m.role, m.message) for m in view.context] == [("system", "please hurry")]

        hold = await client.pause(execution.id, reason="hold on")  # a manual hold on top
        assert hold.success
        with pytest.raises(Conflict, match="already paused"):
            await client.pause(execution.id)
        cancelled = await client.cancel(execution.id, reason="not needed")
        assert cancelled.success
        assert (await client.wait(execution.id, timeout=10)).state == "CANCELLED"
        with pytest.raises(Conflict, match=r"(?i)cancelled"):
            await client.pause(execution.id, reason="late")

        other = await paused_execution(client)
        stopped = await client.terminate(other.id, "operator says stop")
        assert isinstance(stopped, TerminateReply)
        assert stopped.state == "TERMINATED" and stopped.workflow_id == other.id
        with pytest.raises(Conflict):
            await client.terminate(other.id, "again")


async def test_pause_of_a_queued_execution_and_idempotent_retries(server: RunningServer) -> None:
    async with connect(server, role="operator") as client:
        started = await client.start(NS, "approval", idempotency_key="start-1")
        again = await client.start(NS, "approval", idempotency_key="start-1")
        assert again.id == started.id
        with pytest.raises(InvalidInput, match="Idempotency-Key"):
            await client.start(NS, "approval", inputs={"amount": 3}, idempotency_key="start-1")

        first = await client.pause(started.id, reason="hold", idempotency_key="pause-1")
        repeated = await client.pause(started.id, reason="hold", idempotency_key="pause-1")
        assert repeated.command_id == first.command_id
        assert (await client.wait(started.id, until="PAUSED", timeout=10)).state == "PAUSED"


async def test_bulk_dry_run_then_cancel_by_filter(server: RunningServer) -> None:
    async with connect(server, role="operator") as client:
        executions = [await paused_execution(client, bulk="yes") for _ in range(2)]
        ids = {e.id for e in executions}
        preview = await client.bulk("cancel", labels={"bulk": "yes"}, dry_run=True)
        assert preview.dry_run and {r.execution_id for r in preview.results} == ids
        assert all(v.state == "PAUSED" for v in [await client.execution(i) for i in ids])

        done = await client.bulk(
            "cancel", ids=[*ids, "0" * 24], reason="cleanup", idempotency_key="bulk-1"
        )
        statuses = {r.execution_id: r.status for r in done.results}
        assert statuses["0" * 24] == 404
        assert all(statuses[i] == 202 for i in ids)
        for execution_id in ids:
            assert (await client.wait(execution_id, timeout=10)).state == "CANCELLED"


# -- events ---------------------------------------------------------------------------------------


async def test_events_and_follow_until_the_terminal_event(server: RunningServer) -> None:
    async with connect(server, role="operator") as client:
        execution = await paused_execution(client)
        so_far = await client.events(execution.id)
        assert [e.seq for e in so_far] == list(range(1, len(so_far) + 1))
        assert so_far[-1].type == "workflow.paused"
        tail = await client.events(execution.id, after=so_far[-2].seq)
        assert [e.seq for e in tail] == [so_far[-1].seq]

        async def follow() -> list[EventView]:
            return [e async for e in client.follow(execution.id)]

        following = asyncio.create_task(follow())
        await client.resume(execution.id, {"approved": False})
        followed = await asyncio.wait_for(following, 10)
        assert followed == await client.events(execution.id)
        assert followed[-1].type == "workflow.completed"
        # Following a finished execution returns what is left, then ends.
        assert [e async for e in client.follow(execution.id, after=followed[-2].seq)] == [
            followed[-1]
        ]
        assert [e async for e in client.follow(execution.id, after=followed[-1].seq)] == []


class DroppingProxy:
    """A loopback TCP proxy that can cut every open connection (as a flaky network does)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def drop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.update((writer, up_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
            self._tasks.discard(task)
        for w in (writer, up_writer):
            w.transport.abort()
            self._writers.discard(w)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


async def test_follow_reconnects_after_a_dropped_connection_without_gaps_or_repeats(
    server: RunningServer,
) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    async with DroppingProxy(port) as proxy, connect(server, role="operator") as direct:
        execution = await paused_execution(direct)
        received: list[EventView] = []
        async with connect(server, role="operator", url=proxy.url) as flaky:
            stream = flaky.follow(execution.id)
            for _ in range(3):
                received.append(await anext(stream))
            connections_before = proxy.connections
            proxy.drop()
            await direct.resume(execution.id, {"approved": True})
            received += [event async for event in stream]
        assert proxy.connections > connections_before  # it did reconnect
        assert received == await direct.events(execution.id)
        assert [e.seq for e in received] == list(range(1, len(received) + 1))
        assert received[-1].type == "workflow.completed"


async def test_follow_gives_up_with_connection_failed_when_the_server_is_gone() -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", api_key="k") as client:
        with pytest.raises(ConnectionFailed, match="cannot reach"):
            [e async for e in client.follow("0" * 24)]
        with pytest.raises(ConnectionFailed, match="cannot reach"):
            await client.state("0" * 24)


async def test_wait_times_out(server: RunningServer) -> None:
    async with connect(server, role="operator") as client:
        execution = await paused_execution(client)
        with pytest.raises(TimeoutError):
            await client.wait(execution.id, until="COMPLETED", timeout=0.3)


# -- secrets, health ------------------------------------------------------------------------------


async def test_secrets_are_written_listed_and_deleted_by_admins_only(
    server: RunningServer,
) -> None:
    async with connect(server) as admin, connect(server, role="operator") as operator:
        await admin.put_secret("API_TOKEN", "s3cret")
        await admin.put_secret("OTHER", "x")
        assert await admin.secrets() == ["API_TOKEN", "OTHER"]
        await admin.delete_secret("OTHER")
        assert await admin.secrets() == ["API_TOKEN"]
        with pytest.raises(Forbidden):
            await operator.secrets()
        with pytest.raises(Forbidden):
            await operator.put_secret("X", "y")
        assert (await admin.health()).status == "ok"


# -- errors ---------------------------------------------------------------------------------------


async def test_every_error_status_raises_its_class(server: RunningServer) -> None:
    async with AsyncClient(server.base_url, api_key="pp_not_a_key") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.list_executions()
    async with AsyncClient(server.base_url) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.state("0" * 24)
    async with connect(server, role="viewer") as viewer:
        with pytest.raises(Forbidden, match="operator"):
            await viewer.start(NS, "approval")
    async with connect(server, role="operator") as client, connect(server, "globex") as other:
        execution = await paused_execution(client)
        with pytest.raises(NotFound):
            await client.state("0" * 24)
        with pytest.raises(NotFound):  # another organization's execution does not exist
            await other.pause(execution.id)
        with pytest.raises(PayloadTooLarge, match="too large"):
            await client.inject(execution.id, "x" * 1_100_000)
        with pytest.raises(InvalidInput) as invalid:
            await client.terminate(execution.id, "")
        assert invalid.value.errors[0].loc == ("body", "reason")
        assert "reason" in str(invalid.value)
        with pytest.raises(InvalidInput):
            await client.list_executions(cursor="not-a-cursor")


def test_statuses_the_server_should_never_send_still_map_to_one_class() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/state"):
            return httpx.Response(503, json={"detail": "database is locked", "code": "error"})
        if request.url.path.endswith("/audit"):
            return httpx.Response(502, text="<html>Bad Gateway</html>")
        return httpx.Response(429, json={"detail": "slow down"})

    with Client("http://test", transport=httpx.MockTransport(reply)) as client:
        with pytest.raises(ServerError, match="database is locked") as server_error:
            client.state("x")
        assert server_error.value.status_code == 503
        with pytest.raises(ServerError, match="HTTP 502 Bad Gateway from GET") as gateway:
            client.audit("x")
        assert gateway.value.status_code == 502
        with pytest.raises(UnexpectedStatus, match="slow down") as other:
            client.execution("x")
        assert other.value.status_code == 429


def test_base_url_and_credentials_are_checked() -> None:
    with pytest.raises(ValueError, match="http"):
        Client("localhost:8080")
    with pytest.raises(ValueError, match="not both"):
        AsyncClient("http://localhost", api_key="a", token="b")


# -- the blocking client --------------------------------------------------------------------------


async def test_sync_client_from_a_thread(server: RunningServer, tmp_path: Path) -> None:
    path = tmp_path / "greeting.yaml"
    path.write_text(GREETING)

    def session() -> list[str]:
        seen = []
        with connect_sync(server) as client:
            seen.append(f"rev {client.apply_flow(path).revision}")
            assert [f.id for f in client.flows() if f.namespace == "client.tests"] == ["greeting"]
            done = client.wait(client.start("client.tests", "greeting").id, timeout=10)
            seen.append(done.state)
            execution = client.start(NS, "approval", labels={"sync": "1"})
            paused = client.wait(execution.id, until={"PAUSED"}, timeout=10)
            seen.append(paused.state)
            with pytest.raises(TimeoutError):
                client.wait(execution.id, until="COMPLETED", timeout=0.3)
            assert client.validate_resume(execution.id, {"approved": "no"}).inputs == {
                "approved": False,
                "note": "none",
            }
            client.inject(execution.id, "from a thread")
            client.resume(execution.id, {"approved": True}, idempotency_key="sync-resume")
            events = list(client.follow(execution.id))
            seen.append(events[-1].type)
            assert events == client.events(execution.id)
            assert [e.id for e in client.iter_executions(labels={"sync": "1"})] == [execution.id]
            assert [c.kind for c in client.audit(execution.id)] == ["inject", "resume"]
            assert client.state(execution.id).state == "COMPLETED"
            with pytest.raises(Conflict):
                client.pause(execution.id)
            with pytest.raises(Conflict):
                client.cancel(execution.id)
            with pytest.raises(NotFound):
                client.execution("0" * 24)
            client.put_secret("T", "v")
            assert client.secrets() == ["T"]
            client.delete_secret("T")
            other = client.start(NS, "approval")
            assert client.terminate(other.id, "enough").state == "TERMINATED"
            assert client.bulk("pause", ids=[other.id]).results[0].status == 409
        return seen

    assert await asyncio.to_thread(session) == [
        "rev 1",
        "COMPLETED",
        "PAUSED",
        "workflow.completed",
    ]


async def test_sync_follow_reconnects_from_a_thread(server: RunningServer) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    async with DroppingProxy(port) as proxy, connect(server, role="operator") as direct:
        execution = await paused_execution(direct)
        received: list[EventView] = []
        three = threading.Event()

        def follow() -> None:
            with connect_sync(server, role="operator", url=proxy.url) as client:
                for event in client.follow(execution.id):
                    received.append(event)
                    if len(received) == 3:
                        three.set()

        following = asyncio.create_task(asyncio.to_thread(follow))
        assert await asyncio.to_thread(three.wait, 10)
        connections_before = proxy.connections
        proxy.drop()
        await direct.resume(execution.id, {"approved": True})
        await asyncio.wait_for(following, 15)
        assert proxy.connections > connections_before
        assert received == await direct.events(execution.id)
        assert [e.seq for e in received] == list(range(1, len(received) + 1))
