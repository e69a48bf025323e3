"""One model call of an ``agent`` task: an OpenAI-compatible chat completion.

Works with any server that speaks ``POST {base_url}/chat/completions``
(OpenAI, Ollama, vLLM, llama.cpp's server). With ``stream`` the reply is read
as server-sent chunks and each piece of text is handed to the context's
``emit`` as an ``agent.delta`` (shown live, never stored); the assembled
message is the call's output either way.

429 and 5xx replies and dropped connections are retried with back-off
(honouring ``Retry-After``); other errors fail the call with the server's own
words. Cancelling the task closes the connection, so the server sees the
client go away. The provider's host obeys the operator's ``http_allowed_hosts``
and ``http_refuse_private`` settings, as ``http`` tasks do; Python tools come only
from the modules ``python_modules`` allows (see :mod:`pausepoint.tasks.policy`).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import typing
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, create_model

from pausepoint.errors import TaskError
from pausepoint.tasks.context import LeafContext
from pausepoint.tasks.policy import HostRefused, guarded_client, host_policy
from pausepoint.tasks.python import import_function

ATTEMPTS = 4
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 8.0
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


async def run_agent_llm(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    provider = spec.get("provider") or {}
    base_url = str(provider.get("base_url") or "").rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise TaskError(f"agent: provider baseUrl must be an http(s) URL, got {base_url!r}")
    headers = {str(k): str(v) for k, v in (provider.get("headers") or {}).items()}
    if provider.get("api_key"):
        headers["Authorization"] = f"Bearer {provider['api_key']}"
    body: dict[str, Any] = {"model": provider.get("model"), "messages": spec["messages"]}
    tools = [_tool_schema(tool, ctx) for tool in spec.get("tools") or []]
    if tools:
        body["tools"] = tools
    for key in ("temperature", "max_tokens"):
        if spec.get(key) is not None:
            body[key] = spec[key]
    stream = bool(spec.get("stream"))
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    url = f"{base_url}/chat/completions"
    policy = await host_policy(ctx, "agent")
    async with guarded_client(policy, timeout=httpx.Timeout(None, connect=30)) as http:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if stream:
                    return await _streamed(http, url, headers, body, ctx)
                return await _whole(http, url, headers, body)
            except HostRefused as refused:
                raise TaskError(f"agent: provider {base_url} refused: {refused}") from None
            except _Retryable as problem:
                if attempt == ATTEMPTS:
                    raise TaskError(
                        f"agent: {problem.message} (gave up after {ATTEMPTS} tries)"
                    ) from None
                delay = problem.retry_after or min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (attempt - 1))
                ctx.log("WARN", f"model call: {problem.message}; retrying in {delay:g}s")
                await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


async def _whole(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    try:
        response = await http.post(url, json=body, headers=headers)
    except httpx.TransportError as problem:
        raise _Retryable(f"cannot reach {url}: {type(problem).__name__}") from None
    _check(response, response.text)
    try:
        data = response.json()
        message = data["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise TaskError(f"agent: {url} did not answer with a chat completion") from None
    return {
        "message": _clean(message),
        "usage": data.get("usage") or {},
        "model": data.get("model"),
        "finish_reason": data["choices"][0].get("finish_reason"),
    }


async def _streamed(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    ctx: LeafContext,
) -> dict[str, Any]:
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    finish_reason = model = None
    try:
        async with http.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                _check(response, (await response.aread()).decode(errors="replace"))
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    raise TaskError(f"agent: {url} streamed a chunk that is not JSON") from None
                model = chunk.get("model") or model
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    finish_reason = choice.get("finish_reason") or finish_reason
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        content.append(delta["content"])
                        if ctx.emit is not None:
                            ctx.emit("agent.delta", {"content": delta["content"]})
                    for piece in delta.get("tool_calls") or []:
                        _merge_call(calls.setdefault(int(piece.get("index", 0)), {}), piece)
    except httpx.TransportError as problem:
        raise _Retryable(f"cannot reach {url}: {type(problem).__name__}") from None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    return {"message": message, "usage": usage, "model": model, "finish_reason": finish_reason}


def _merge_call(call: dict[str, Any], piece: Mapping[str, Any]) -> None:
    """Assemble a streamed tool call: ids and names arrive once, arguments in pieces."""
    if piece.get("id"):
        call["id"] = piece["id"]
    call["type"] = "function"
    function = call.setdefault("function", {"name": "", "arguments": ""})
    got = piece.get("function") or {}
    if got.get("name"):
        function["name"] = got["name"]
    function["arguments"] += got.get("arguments") or ""


def _check(response: httpx.Response, text: str) -> None:
    if response.status_code < 400:
        return
    said = " ".join(text.split())[:300]
    message = f"{response.request.url} answered {response.status_code}: {said}"
    if response.status_code in RETRIED_STATUSES:
        raise _Retryable(message, _retry_after(response.headers.get("retry-after")))
    raise TaskError(f"agent: {message}")


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_BACKOFF, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def _clean(message: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        kept["tool_calls"] = list(message["tool_calls"])
    return kept


def _tool_schema(tool: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """The function definition the model sees for one tool."""
    description = tool.get("description")
    parameters = tool.get("parameters")
    if tool.get("python") and (parameters is None or description is None):
        function = import_function(tool["python"], ctx.settings)
        parameters = parameters if parameters is not None else signature_schema(function)
        description = description or _first_paragraph(inspect.getdoc(function))
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": description or "",
            "parameters": parameters or {"type": "object", "properties": {}},
        },
    }


def signature_schema(function: Callable[..., Any]) -> dict[str, Any]:
    """JSON Schema of a function's parameters, from its type hints and defaults."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable annotations: describe those parameters as "any"
        hints = {}
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name == "pausepoint" or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        annotation = hints.get(name, Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (annotation, default)
    model: type[BaseModel] = create_model(f"{function.__name__}_args", **fields)
    described = model.model_json_schema()
    described.pop("title", None)
    for prop in described.get("properties", {}).values():
        prop.pop("title", None)
    return described


def _first_paragraph(doc: str | None) -> str:
    return doc.split("\n\n")[0].replace("\n", " ").strip() if doc else ""
