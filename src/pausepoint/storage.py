"""Internal storage addresses, and cutting stored items into batches.

Files live in the store, each organization's own, under URIs in Kestra's form
(``kestra:///<namespace as folders>/...``) so that Kestra flows pass them
around unchanged:

- a task run's files: ``kestra:///<ns>/<flow>/executions/<id>/tasks/<task>/<run>/<name>``
  (the task id with ``_`` written ``-``, as Kestra does);
- a FILE input sent with a start: ``kestra:///<ns>/<flow>/executions/uploads/<token>/<input>/<name>``;
- a namespace's own files: ``kestra:///<ns>/_files/<path>``.

This module is pure: the store keeps the bytes, tasks and the service build the names.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

SCHEME = "kestra://"
_PREFIX = "kestra:///"
_SEGMENT = re.compile(r"^[A-Za-z0-9._\-]+$")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3}
_UNITS["GB"] = 1024**3
MAX_FILE_BYTES = 64 * 1024 * 1024  # one stored file: the store keeps it in one row


class StorageError(ValueError):
    """A URI or a batch rule that cannot be used; the message says why."""


def check_uri(uri: object) -> str:
    """``uri`` if it is an internal storage URI pausepoint can address, else StorageError."""
    if not isinstance(uri, str) or not uri.startswith(_PREFIX):
        raise StorageError(f"{uri!r} is not an internal storage URI (kestra:///...)")
    segments = uri[len(_PREFIX) :].split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise StorageError(f"{uri!r}: empty, '.' or '..' path segments are not allowed")
    return uri


def _segment(value: str, what: str) -> str:
    if not _SEGMENT.match(value) or value in (".", ".."):
        raise StorageError(f"{what} {value!r}: use letters, digits, '.', '_' and '-' only")
    return value


def _namespace(namespace: str) -> str:
    parts = namespace.split(".")
    if "_files" in parts:
        # kestra:///<ns>/_files/ holds a namespace's own files: no flow's may land there.
        raise StorageError(f"namespace {namespace!r}: a part named '_files' cannot hold files")
    return "/".join(_segment(part, "namespace part") for part in parts)


def task_file_uri(
    namespace: str, flow_id: str, execution_id: str, task_id: str, run_id: str, name: str
) -> str:
    """Where task run ``run_id`` of ``task_id`` writes the file ``name``.

    ``name`` may be a relative path (``out/stay.txt``, as a working directory's
    files are named); characters other than letters, digits, ``.``, ``_`` and
    ``-`` are percent-encoded, so every name has a URI of its own.
    """
    task = _segment(task_id.replace("_", "-"), "task id")
    return (
        f"{_PREFIX}{_namespace(namespace)}/{_segment(flow_id, 'flow id')}/executions/"
        f"{_segment(execution_id, 'execution id')}/tasks/{task}/{_segment(run_id, 'task run')}/"
        f"{_file_path(name)}"
    )


def log_file_name(attempt: int) -> str:
    """The name of the file an attempt of a ``logToFile`` task writes its log lines to."""
    return f"logs/attempt-{attempt}.log"


def _file_path(name: str) -> str:
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise StorageError(
            f"file name {name!r}: must be a relative path without empty, '.' or '..' parts"
        )
    return "/".join(urllib.parse.quote(part, safe="._-") for part in parts)


def upload_uri(namespace: str, flow_id: str, token: str, input_id: str, file_name: str) -> str:
    """Where a file sent as the FILE input ``input_id`` of a start is kept."""
    safe_name = re.sub(r"[^A-Za-z0-9._\-]", "_", file_name).strip(".") or "file"
    return (
        f"{_PREFIX}{_namespace(namespace)}/{_segment(flow_id, 'flow id')}/executions/uploads/"
        f"{_segment(token, 'upload')}/{_segment(input_id, 'input')}/{safe_name}"
    )


def namespace_root(namespace: str) -> str:
    """Where a namespace's own files are kept: ``kestra:///<ns>/_files/``."""
    return f"{_PREFIX}{_namespace(namespace)}/_files/"


def namespace_file_uri(namespace: str, path: str) -> str:
    """Where the namespace's own file ``path`` (``a/b.txt``) is kept."""
    parts = [part for part in path.strip().split("/") if part]
    if not parts:
        raise StorageError("a namespace file needs a path")
    return namespace_root(namespace) + "/".join(_segment(part, "path part") for part in parts)


def parse_size(value: str) -> int:
    """``"10KB"`` → 10240; plain numbers are bytes."""
    match = _SIZE.match(str(value))
    if match is None or match.group(2).upper() not in _UNITS:
        raise StorageError(f"batch.bytes: expected a size such as 10KB or 2MB, got {value!r}")
    size = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if size < 1:
        raise StorageError(f"batch.bytes: must be at least 1 byte, got {value!r}")
    return size


def _positive(value: object, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise StorageError(f"batch.{what}: expected a whole number, got {value!r}") from None
    if number < 1:
        raise StorageError(f"batch.{what}: must be 1 or more, got {number}")
    return number


def split_items(
    content: bytes,
    *,
    rows: object = None,
    size: object = None,
    partitions: object = None,
    separator: str = "\n",
) -> list[bytes]:
    """Cut ``content`` into batches of whole items (each item ends at ``separator``).

    By ``rows`` items per batch (1 when nothing is said), by at most ``size``
    bytes per batch (an item longer than that is a batch of its own), or into
    ``partitions`` batches of near-equal item counts (fewer when there are
    fewer items). Each batch keeps its items' separators; no items, no batches.
    """
    items = _items(content, separator.encode())
    if partitions not in (None, ""):
        count = min(_positive(partitions, "partitions"), len(items))
        cuts = [len(items) * n // count for n in range(count + 1)] if count else [0]
        return [b"".join(items[a:b]) for a, b in itertools.pairwise(cuts)]
    if size not in (None, ""):
        return list(_by_size(items, parse_size(str(size))))
    per_batch = 1 if rows in (None, "") else _positive(rows, "rows")
    return [b"".join(items[n : n + per_batch]) for n in range(0, len(items), per_batch)]


def _items(content: bytes, separator: bytes) -> list[bytes]:
    if not content:
        return []
    pieces = content.split(separator)
    items = [piece + separator for piece in pieces[:-1]]
    if pieces[-1]:
        items.append(pieces[-1] + separator)  # the last item, without its separator
    return items


def _by_size(items: Iterable[bytes], limit: int) -> Iterable[bytes]:
    batch: list[bytes] = []
    used = 0
    for item in items:
        if batch and used + len(item) > limit:
            yield b"".join(batch)
            batch, used = [], 0
        batch.append(item)
        used += len(item)
    if batch:
        yield b"".join(batch)


def stored_values(content: bytes) -> list[Any]:
    """The values a stored file holds, one per item: a JSON array's elements, or else
    each non-blank line as its text (as Kestra's Loop reads a file's lines)."""
    text = content.decode("utf-8", errors="replace")
    if text.lstrip().startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


# -- read() in expressions ---------------------------------------------------------------
#
# Expressions render inside the engine, which does no I/O; ``read(uri)`` renders to a
# mark naming the file, and the task's runner puts the file's text in its place just
# before the task runs. So read() works as a whole value or inside text, not through
# filters (which would see the mark).

_MARK = "\x00pausepoint-read\x00"
_MARKED = re.compile(re.escape(_MARK) + r"(.*?)" + re.escape(_MARK), re.DOTALL)


def deferred_read(uri: object) -> str:
    """What ``read(uri)`` renders to: a mark the task's runner replaces with the text."""
    return f"{_MARK}{check_uri(uri)}{_MARK}"


def is_deferred(text: str) -> bool:
    return _MARK in text


def deferred_reads(value: object) -> set[str]:
    """The URIs ``value`` (a rendered spec) reads."""
    if isinstance(value, str):
        return set(_MARKED.findall(value)) if _MARK in value else set()
    if isinstance(value, dict):
        return set().union(*(deferred_reads(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(deferred_reads(item) for item in value))
    return set()


def has_mangled_read(value: object) -> bool:
    """Whether a read() mark was changed by a filter (so it could not be replaced)."""
    if isinstance(value, str):
        return "\x00" in value and "pausepoint-read" in value.casefold()
    if isinstance(value, dict):
        return any(has_mangled_read(item) for item in value.values())
    if isinstance(value, list):
        return any(has_mangled_read(item) for item in value)
    return False


def resolve_reads(value: object, texts: dict[str, str]) -> object:
    """``value`` with each read mark replaced by the text of its file."""
    if isinstance(value, str):
        return _MARKED.sub(lambda match: texts[match.group(1)], value)
    if isinstance(value, dict):
        return {key: resolve_reads(item, texts) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_reads(item, texts) for item in value]
    return value
