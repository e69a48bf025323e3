"""OpenTelemetry spans for control requests and task runs, when switched on.

Opt-in (``Settings.otel_traces``, ``PAUSEPOINT_OTEL_TRACES=true``) and the
``otel`` extra: pausepoint imports OpenTelemetry only then, so it runs without
the packages, and with tracing off a span is one attribute test and a shared
no-op context manager. Spans go to the tracer provider the process already
has (``opentelemetry-instrument``, or one an application installed); without
one, pausepoint installs the SDK's with the exporter ``OTEL_TRACES_EXPORTER``
names (``otlp``, the default, sending where ``OTEL_EXPORTER_OTLP_*`` say;
``console``; ``none``).

A span's parent is a W3C ``traceparent``: the caller's for a control request,
the one the execution was started with for its task runs.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pausepoint.config import Settings

_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()
_INSTRUMENTATION = "pausepoint"
_setup_lock = threading.Lock()


class Tracing:
    """Where pausepoint's spans go; ``OFF`` records nothing and costs nothing."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer  # an OpenTelemetry Tracer, or None when off

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def span(
        self,
        name: str,
        *,
        traceparent: str | None,
        tracestate: str | None = None,
        attributes: Mapping[str, str | int] | None = None,
        server: bool = False,
    ) -> AbstractContextManager[None]:
        """A span named ``name`` around a block, the child of ``traceparent`` (a new
        trace without one); a no-op when tracing is off."""
        if self._tracer is None:
            return _NO_SPAN
        return self._recorded(name, traceparent, tracestate, dict(attributes or {}), server)

    @contextlib.contextmanager
    def _recorded(
        self,
        name: str,
        traceparent: str | None,
        tracestate: str | None,
        attributes: dict[str, str | int],
        server: bool,
    ) -> Iterator[None]:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier = {"traceparent": traceparent} if traceparent else {}
        if traceparent and tracestate:
            carrier["tracestate"] = tracestate
        # An empty context, not the current one: the parent is the caller's trace alone.
        parent = TraceContextTextMapPropagator().extract(carrier, context=otel_context.Context())
        kind = SpanKind.SERVER if server else SpanKind.INTERNAL
        with self._tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=attributes
        ):
            yield


OFF = Tracing(None)
_enabled: Tracing | None = None


def tracing_for(settings: Settings) -> Tracing:
    """The process's tracing as ``settings`` ask: ``OFF`` unless ``otel_traces``.

    Raises ``ImportError`` naming the ``otel`` extra when it is asked for and the
    packages are missing.
    """
    if not settings.otel_traces:
        return OFF
    global _enabled
    with _setup_lock:
        if _enabled is None:
            _enabled = Tracing(_tracer())
        return _enabled


def _tracer() -> Any:
    try:
        from opentelemetry import trace

        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(_sdk_provider())
    except ImportError as error:
        raise ImportError(
            f"PAUSEPOINT_OTEL_TRACES needs OpenTelemetry's SDK ({error}): "
            "pip install 'pausepoint[otel]'"
        ) from error
    return trace.get_tracer(_INSTRUMENTATION)


def _sdk_provider() -> Any:
    """The SDK's tracer provider, exporting where ``OTEL_TRACES_EXPORTER`` says."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "pausepoint")})
    provider = TracerProvider(resource=resource)
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    exporter: Any = None
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
