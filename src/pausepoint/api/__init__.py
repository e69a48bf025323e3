"""The HTTP API: FastAPI routes over the control plane (``pausepoint.Engine``)."""

from pausepoint.api.app import create_app

__all__ = ["create_app"]
