"""What a flow may run is the operator's decision, never the flow author's.

A flow is written by an organization's admin; the server, its database file
and its secrets key belong to the operator and hold every organization's data.
So whatever reaches the server's process or network from a flow passes here:

- ``python`` tasks and agent tools call functions only from the modules the
  operator allows: those ``python_modules`` names and those found directly
  under ``python_paths``. See :data:`NEVER_IMPLIED` for the standard-library modules
  that are allowed only when named.
- ``shell`` tasks run where ``shell_enabled`` is on, or in the organizations
  ``shell_organizations`` names.
- ``http`` tasks and agent providers reach the hosts ``http_allowed_hosts``
  gives the organization, and with ``http_refuse_private`` never a loopback,
  private or link-local address (checked on the addresses each connection
  actually uses, redirects included).

Every refusal names the setting that would allow it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import ipaddress
import os
import re
import socket
import sys
import threading
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpcore
import httpx

from pausepoint.config import Settings
from pausepoint.errors import FieldError, FlowError, TaskError
from pausepoint.flow.model import Flow, PythonTask
from pausepoint.flow.paths import iter_tasks
from pausepoint.tasks.context import LeafContext

# -- python functions ----------------------------------------------------------------

NEVER_IMPLIED = frozenset(
    {
        # processes, signals and the interpreter itself
        "os", "posix", "nt", "sys", "subprocess", "_posixsubprocess", "multiprocessing",
        "concurrent", "pty", "tty", "termios", "fcntl", "resource", "signal", "threading",
        "_thread", "atexit", "faulthandler", "gc", "webbrowser", "platform", "pdb", "bdb",
        "trace", "tracemalloc",
        # files and file formats that open paths by name
        "pathlib", "posixpath", "ntpath", "genericpath", "shutil", "io", "_io", "_pyio",
        "tempfile", "glob", "fileinput", "filecmp", "linecache", "tokenize", "codecs",
        "zipfile", "tarfile", "gzip", "bz2", "lzma", "mmap", "sqlite3", "dbm", "shelve",
        "mailbox", "mimetypes", "netrc", "imghdr", "sndhdr", "wave", "aifc", "sunau",
        "tabnanny", "pyclbr", "logging", "xml", "plistlib", "configparser",
        # loading and running code
        "builtins", "importlib", "imp", "pkgutil", "runpy", "zipimport", "modulefinder",
        "code", "codeop", "compileall", "py_compile", "marshal", "pickle", "_pickle",
        "pickletools", "copyreg", "ctypes", "_ctypes", "timeit", "cProfile", "profile",
        "pstats", "doctest", "unittest", "pydoc", "inspect", "site", "sysconfig", "venv",
        "ensurepip", "zipapp", "distutils", "types", "dis", "ast", "symtable",
        # the network (it has its own rules: http_allowed_hosts)
        "socket", "_socket", "ssl", "select", "selectors", "asyncio", "socketserver",
        "http", "urllib", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc",
        # the accounts of the machine
        "pwd", "grp", "spwd", "crypt", "getpass",
    }
)  # fmt: skip
"""Top-level modules allowed only when ``python_modules`` names them (or a module in them).

Each either starts processes, opens files by name, loads or runs code, reaches the
network, walks the interpreter's objects (``gc``, ``inspect``, ``types``) or reads
the machine's accounts: called from a flow, any of them reaches the database file,
the secrets key or another organization's data. Harmless modules (``json``,
``math``, ``re``, ``datetime`` ...) are not listed; they too are refused unless
allowed, this list only keeps them out of what is allowed *implicitly*: a module
found under ``python_paths`` with one of these names, or a function defined in one
of them and reached through an allowed module.
"""

# Modules whose functions are implemented in another module of another name.
_IMPLEMENTED_IN = {"posix": "os", "nt": "os", "posixpath": "os.path", "ntpath": "os.path"}

_SETTING = "python_modules setting (PAUSEPOINT_PYTHON_MODULES)"
_discovered: dict[str, tuple[int, tuple[str, ...]]] = {}
_discovered_lock = threading.Lock()


def _top(name: str) -> str:
    return name.partition(".")[0]


def _modules_in(directory: str) -> tuple[str, ...]:
    """Top-level modules and packages directly in ``directory`` (cached until it changes)."""
    try:
        mtime = os.stat(directory).st_mtime_ns
    except OSError:
        return ()
    with _discovered_lock:
        cached = _discovered.get(directory)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    names: set[str] = set()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        entries = []
    for entry in entries:
        stem = entry.name.partition(".")[0]
        if not stem.isidentifier() or stem == "__init__":
            continue
        package = entry.is_dir() and Path(entry.path, "__init__.py").is_file()
        if package or (entry.is_file() and entry.name.endswith((".py", ".so", ".pyd"))):
            names.add(stem)
    found = tuple(sorted(names - NEVER_IMPLIED))
    with _discovered_lock:
        _discovered[directory] = (mtime, found)
    return found


def allowed_modules(settings: Settings) -> tuple[str, ...]:
    """The module names (and package prefixes) python tasks may call functions from:
    those ``python_modules`` names and those found directly under ``python_paths``
    (the operator put them there), except the latter's :data:`NEVER_IMPLIED` names."""
    found = {name for path in settings.python_paths for name in _modules_in(path)}
    return (*settings.python_modules, *sorted(found))


def _allows(allowed: Iterable[str], module: str) -> bool:
    return any(module == entry or module.startswith(entry + ".") for entry in allowed)


def _allows_implementation(allowed: Iterable[str], module: str) -> bool:
    """Whether ``module`` is allowed, or implements one that is (``posix`` is ``os``'s,
    ``_json`` is ``json``'s): an allowed module brings its C implementation."""
    twin = _IMPLEMENTED_IN.get(module) or module.lstrip("_")
    return _allows(allowed, module) or _allows(allowed, twin)


def function_refusal(reference: str, settings: Settings) -> str | None:
    """Why ``reference`` (``module:attribute.path``) may not be called; None if it may,
    as far as can be told without importing anything (checked again once imported)."""
    module, _, attribute_path = reference.partition(":")
    if not module or not attribute_path:
        return f"'function' must look like 'package.module:function', got {reference!r}"
    if not all(part.isidentifier() for part in module.split(".")):
        return f"function {reference}: {module!r} is not an absolute module name"
    for part in attribute_path.split("."):
        if not part.isidentifier() or part.startswith("_"):
            return (
                f"function {reference} is not allowed: {part!r} is not a public attribute "
                "(names starting with '_' are never reached)"
            )
    if not _allows(allowed_modules(settings), module):
        return (
            f"function {reference} is not allowed: module '{module}' is not in the "
            f"{_SETTING} and not found under python_paths"
        )
    return None


def _defined_in(target: Any) -> str:
    """The module that defines ``target`` (for a bound method: its object's type's)."""
    module = getattr(target, "__module__", None)
    if isinstance(module, str):
        return module
    owner = getattr(target, "__self__", None)
    if isinstance(owner, types.ModuleType):
        return owner.__name__
    if owner is not None:
        return type(owner).__module__
    return type(target).__module__


def resolved_refusal(reference: str, steps: list[Any], settings: Settings) -> str | None:
    """Why the objects met resolving ``reference`` (the module, each attribute in turn)
    may not be used; None if they may.

    - A module allowed only because its name was found under ``python_paths`` must be
      the file found there: a built-in or frozen module of the same name (``_imp``,
      ``posix``) is imported ahead of ``sys.path`` and is not the operator's.
    - An allowed module can hand out what it imported (``allowed:os.system``,
      ``allowed:Path.read_text``): every module met on the way must be allowed, and so
      must the module the function is defined in, unless that one is a standard
      library module outside :data:`NEVER_IMPLIED` (``json``, ``math``): another
      package's function (``sqlalchemy``, ``pausepoint`` itself) is not allowed
      through an allowed module. A module ``python_modules`` names brings its C
      implementation (``os`` brings ``posix.system``, ``json`` brings ``_json``).
    """
    allowed = allowed_modules(settings)
    named = settings.python_modules
    root = steps[0]
    if isinstance(root, types.ModuleType) and not _allows(named, root.__name__):
        origin = getattr(root, "__file__", None)
        if not _found_under(origin, settings.python_paths):
            return (
                f"function {reference} is not allowed: module '{root.__name__}' was not "
                f"imported from python_paths (it is {origin or 'built in'}) and is not in the "
                f"{_SETTING}"
            )
    for step in steps:
        if isinstance(step, types.ModuleType) and not (
            _allows(allowed, step.__name__) or _allows_implementation(named, step.__name__)
        ):
            return (
                f"function {reference} is not allowed: it reaches module '{step.__name__}', "
                f"which is not in the {_SETTING}"
            )
    defined = _defined_in(steps[-1])
    if _allows(allowed, defined) or _allows_implementation(named, defined):
        return None
    top = _top(defined)
    harmless = top in sys.stdlib_module_names and top.lstrip("_") not in NEVER_IMPLIED
    if harmless and top not in NEVER_IMPLIED:
        return None
    return (
        f"function {reference} is not allowed: it is defined in module '{defined}', "
        f"which is not in the {_SETTING}"
    )


@functools.lru_cache(maxsize=1024)
def _found_under(origin: str | None, paths: tuple[str, ...]) -> bool:
    """Whether the file ``origin`` lies in one of the directories ``paths``."""
    if origin is None:
        return False
    where = Path(origin).resolve()
    return any(where.is_relative_to(Path(path).resolve()) for path in paths)


def check_flow_functions(flow: Flow, settings: Settings, source: str = "<flow>") -> None:
    """Raise FlowError (422) naming each python task and agent tool of ``flow`` whose
    function the operator does not allow: refused when the flow is saved, not when it runs."""
    problems = [
        FieldError((*_location(path), "function"), refusal, "not_allowed")
        for path, task in iter_tasks(flow)
        if isinstance(task, PythonTask)
        and (refusal := function_refusal(task.function, settings)) is not None
    ]
    if problems:
        raise FlowError("\n".join(f"{source} {problem}" for problem in problems), problems)


def _location(path: str) -> tuple[str | int, ...]:
    """``tasks[0].tasks[2]`` as a field location: ``("tasks", 0, "tasks", 2)``."""
    return tuple(
        int(part) if part.isdigit() else part for part in re.split(r"[.\[\]]+", path) if part
    )


# -- organizations ------------------------------------------------------------------


async def organization_of(ctx: LeafContext, what: str) -> str:
    """The organization the task's execution belongs to; TaskError when unknown."""
    if ctx.control is None:
        raise TaskError(f"{what}: this runtime cannot tell which organization runs the task")
    return await ctx.control.organization(ctx)


async def check_shell_allowed(ctx: LeafContext) -> None:
    """TaskError naming the settings unless shell tasks may run in the task's organization."""
    settings = ctx.settings
    if settings.shell_enabled:
        return
    message = (
        "shell tasks are disabled; enable them with PAUSEPOINT_SHELL_ENABLED=true "
        "or Settings(shell_enabled=True)"
    )
    if not settings.shell_organizations:
        raise TaskError(message)
    org = await organization_of(ctx, "shell task")
    if org not in settings.shell_organizations:
        raise TaskError(
            f"shell tasks are disabled in organization {org!r}: add it to the "
            "shell_organizations setting (PAUSEPOINT_SHELL_ORGANIZATIONS) or set "
            "PAUSEPOINT_SHELL_ENABLED=true"
        )


# -- hosts --------------------------------------------------------------------------


class HostRefused(Exception):
    """A connection the policy refuses; its message names the setting that would allow it."""


class HostPolicy:
    """Which hosts one task may reach: the organization's patterns and private addresses."""

    def __init__(self, settings: Settings, org: str | None) -> None:
        self.org = org
        self.limited = bool(settings.http_allowed_hosts)
        listed = settings.http_allowed_hosts
        patterns = listed.get(org, listed.get("*", ())) if org is not None else ()
        self.patterns = tuple(pattern.strip().lower() for pattern in patterns)
        self.refuse_private = settings.http_refuse_private

    def check_host(self, host: str) -> None:
        host = host.strip("[]").lower()
        if not self.limited or any(fnmatch.fnmatchcase(host, p) for p in self.patterns):
            return
        raise HostRefused(
            f"host {host!r} is not allowed for organization {self.org!r}: add it to the "
            "organization's entry of the http_allowed_hosts setting "
            "(PAUSEPOINT_HTTP_ALLOWED_HOSTS)"
        )

    def named_exactly(self, host: str) -> bool:
        return host.strip("[]").lower() in self.patterns

    def check_address(self, host: str, address: str) -> None:
        if not self.refuse_private or self.named_exactly(host):
            return
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            raise HostRefused(
                f"host {host!r} resolves to {ip}, a private, loopback, link-local or reserved "
                "address, refused by the http_refuse_private setting "
                "(PAUSEPOINT_HTTP_REFUSE_PRIVATE); name the host exactly in the "
                "organization's http_allowed_hosts entry to allow it"
            )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves each host itself, checks every address, then connects to a checked one:
    what was checked is what is connected to (no second lookup to race)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, policy: HostPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {error}") from error
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self._policy.check_address(host, address)
        if not addresses:
            raise httpcore.ConnectError(f"{host!r} resolves to no address")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise HostRefused("unix sockets are not reachable from tasks")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def host_policy(ctx: LeafContext, what: str) -> HostPolicy:
    """The host policy of the task's organization (looked up only when some rule needs it)."""
    settings = ctx.settings
    org = await organization_of(ctx, what) if settings.http_allowed_hosts else None
    return HostPolicy(settings, org)


def guarded_client(policy: HostPolicy, **options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every request (redirects included) and connection
    obey ``policy``; refusals raise :class:`HostRefused`.

    Refusing private addresses means connecting only to addresses checked here, so the
    client then ignores the environment's proxies (a proxy would connect on its own)
    and ``.netrc`` (whose credentials are the server's, not a flow's to send).
    """

    async def check_request(request: httpx.Request) -> None:
        policy.check_host(request.url.host)

    hooks: dict[str, list[Any]] = {"request": [check_request]}
    if not policy.refuse_private:
        return httpx.AsyncClient(event_hooks=hooks, **options)
    transport = httpx.AsyncHTTPTransport()
    # httpx has no public hook for its connection pool's network backend.
    pool = transport._pool
    pool._network_backend = _GuardedBackend(pool._network_backend, policy)
    return httpx.AsyncClient(transport=transport, event_hooks=hooks, trust_env=False, **options)
