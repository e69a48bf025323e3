"""pausepoint: durable workflows and agents you can pause, resume, cancel, terminate and steer.

The names below are imported on first use (PEP 562): ``import pausepoint`` alone,
as the command line does, loads neither the server nor the database layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pausepoint.client import AsyncClient, Client
    from pausepoint.config import Settings
    from pausepoint.errors import (
        Conflict,
        FlowError,
        Forbidden,
        InputValidationError,
        InvalidInput,
        NotFound,
        PausepointError,
        TaskCancelled,
        TaskError,
        TemplateError,
        Unauthorized,
    )
    from pausepoint.flow import load_flow, load_flow_file
    from pausepoint.flow.model import Flow
    from pausepoint.models import (
        ControlResult,
        EventView,
        ExecutionView,
        PausePointView,
        StateView,
        TaskRunView,
    )
    from pausepoint.service.engine import Engine
    from pausepoint.service.requests import (
        CancelRequest,
        InjectRequest,
        PauseRequest,
        ResumeRequest,
        TerminateRequest,
    )

# name -> the module it comes from
_EXPORTS = {
    "AsyncClient": "pausepoint.client",
    "Client": "pausepoint.client",
    "Settings": "pausepoint.config",
    "Conflict": "pausepoint.errors",
    "FlowError": "pausepoint.errors",
    "Forbidden": "pausepoint.errors",
    "InputValidationError": "pausepoint.errors",
    "InvalidInput": "pausepoint.errors",
    "NotFound": "pausepoint.errors",
    "PausepointError": "pausepoint.errors",
    "TaskCancelled": "pausepoint.errors",
    "TaskError": "pausepoint.errors",
    "TemplateError": "pausepoint.errors",
    "Unauthorized": "pausepoint.errors",
    "load_flow": "pausepoint.flow",
    "load_flow_file": "pausepoint.flow",
    "Flow": "pausepoint.flow.model",
    "ControlResult": "pausepoint.models",
    "EventView": "pausepoint.models",
    "ExecutionView": "pausepoint.models",
    "PausePointView": "pausepoint.models",
    "StateView": "pausepoint.models",
    "TaskRunView": "pausepoint.models",
    "Engine": "pausepoint.service.engine",
    "CancelRequest": "pausepoint.service.requests",
    "InjectRequest": "pausepoint.service.requests",
    "PauseRequest": "pausepoint.service.requests",
    "ResumeRequest": "pausepoint.service.requests",
    "TerminateRequest": "pausepoint.service.requests",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pausepoint' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "AsyncClient",
    "CancelRequest",
    "Client",
    "Conflict",
    "ControlResult",
    "Engine",
    "EventView",
    "ExecutionView",
    "Flow",
    "FlowError",
    "Forbidden",
    "InjectRequest",
    "InputValidationError",
    "InvalidInput",
    "NotFound",
    "PausePointView",
    "PauseRequest",
    "PausepointError",
    "ResumeRequest",
    "Settings",
    "StateView",
    "TaskCancelled",
    "TaskError",
    "TaskRunView",
    "TemplateError",
    "TerminateRequest",
    "Unauthorized",
    "load_flow",
    "load_flow_file",
]
