"""``cdo-inspect --http``: live operator page, Prometheus ``/metrics`` and ``/healthz`` of a run.

Read-only and off the inspection path: the pipeline only updates in-memory
state (:class:`~cdo_deploy.sinks.LiveSink`, the run counters); the server
reads it in its own threads.

Example:
    >>> from cdo_deploy.web import parse_http_address
    >>> parse_http_address(":9100")
    ('127.0.0.1', 9100)
"""

from __future__ import annotations

from .prometheus import metrics_registry, render
from .server import TOKEN_ENV, WebServer, parse_http_address, resolve_token
from .view import LineView

__all__ = ["TOKEN_ENV", "LineView", "WebServer", "metrics_registry", "parse_http_address", "render",
           "resolve_token"]
