"""The flow language: models, YAML loading, typed inputs and ``{{ … }}`` templates."""

from pausepoint.flow.inputs import InputSpec, coerce_inputs, inputs_json_schema
from pausepoint.flow.model import Flow, Task
from pausepoint.flow.parser import flow_from_dict, load_flow, load_flow_file
from pausepoint.flow.paths import iter_tasks, path_of, task_at
from pausepoint.flow.templates import render, render_condition

__all__ = [
    "Flow",
    "InputSpec",
    "Task",
    "coerce_inputs",
    "flow_from_dict",
    "inputs_json_schema",
    "iter_tasks",
    "load_flow",
    "load_flow_file",
    "path_of",
    "render",
    "render_condition",
    "task_at",
]
