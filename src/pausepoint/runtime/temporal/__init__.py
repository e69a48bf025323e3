"""The Temporal runtime: the same flows and controls, run by Temporal workers.

One generic workflow (:mod:`.workflow`) drives the pure engine per execution;
its activities (:mod:`.activities`) load it from the store, write each
checkpoint back and run the tasks. :class:`TemporalRuntime` is the control
plane's side; :class:`ExecutionWorker` runs in ``pausepoint worker``.
"""

from __future__ import annotations

from pausepoint.runtime.temporal.messages import workflow_id
from pausepoint.runtime.temporal.runtime import TemporalRuntime, TemporalUnavailable
from pausepoint.runtime.temporal.worker import ExecutionWorker

__all__ = ["ExecutionWorker", "TemporalRuntime", "TemporalUnavailable", "workflow_id"]
