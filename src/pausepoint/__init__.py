"""pausepoint: durable workflows and agents you can pause, resume, cancel, terminate and steer."""

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
