"""The public surface is deliberate: adding or removing a name must be a conscious change."""

import pausepoint

EXPECTED = {
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
    "PauseRequest",
    "PausePointView",
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
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(pausepoint.__all__) == EXPECTED


def test_every_public_name_is_importable() -> None:
    for name in pausepoint.__all__:
        assert getattr(pausepoint, name) is not None


def test_task_cancellation_cannot_be_swallowed_by_except_exception() -> None:
    assert not issubclass(pausepoint.TaskCancelled, Exception)
    assert issubclass(pausepoint.TaskCancelled, BaseException)
