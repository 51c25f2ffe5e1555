"""The read-only HTTP server of ``cdo-inspect --http``: operator page, ``/metrics``, ``/healthz``.

Routes (GET only; anything else is 405, unknown paths 404):

* ``/``: the live operator page (one HTML file shipped with the package, no
  CDN, no build step; it polls ``/api/state`` once a second);
* ``/api/state``: JSON of :meth:`LineView.state`;
* ``/thumb/<n>.jpg``: thumbnail of kept part ``n`` (heat-map overlay on NG parts);
* ``/metrics``: Prometheus text format (:mod:`cdo_deploy.web.prometheus`);
* ``/healthz``: ``{"status": "ok"}`` with 200 while the run is healthy, 503
  once a stage failed or the run ended (for systemd/Kubernetes probes).

The server runs in its own threads (``ThreadingHTTPServer``) and only reads
in-memory state; the inspection threads never wait for it. It binds
``127.0.0.1`` unless a host is given. With a token (:func:`resolve_token`:
``--http-token-file`` or ``CDO_HTTP_TOKEN``) every route but ``/healthz``
needs ``Authorization: Bearer TOKEN`` (or ``?token=TOKEN``, which the page
passes on); binding a non-loopback address without a token is refused.

Example:
    >>> parse_http_address("8080"), parse_http_address("0.0.0.0:9100"), parse_http_address("[::1]:0")
    (('127.0.0.1', 8080), ('0.0.0.0', 9100), ('::1', 0))
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import CdoError
from .prometheus import CONTENT_TYPE, metrics_registry, render
from .view import LineView

__all__ = ["TOKEN_ENV", "WebServer", "parse_http_address", "resolve_token"]

log = logging.getLogger(__name__)

#: environment variable holding the bearer token (when no token file is given)
TOKEN_ENV = "CDO_HTTP_TOKEN"
_THUMB = re.compile(r"^/thumb/(\d+)\.jpg$")


def parse_http_address(spec: str) -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); host defaults to 127.0.0.1.

    Raises:
        CdoError: no valid port.
    """
    host, port = "127.0.0.1", spec.strip()
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)", port)
    if m:
        host, port = m.groups()
    elif ":" in port:
        host, _, port = port.rpartition(":")
        host = host or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise CdoError(f"bad --http {spec!r}: use PORT or HOST:PORT, e.g. 8080 or 0.0.0.0:8080")
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(token_file: str | Path | None) -> str | None:
    """The bearer token: the first line of ``token_file``, else ``$CDO_HTTP_TOKEN``, else ``None``.

    Raises:
        CdoError: the file cannot be read or is empty.
    """
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip().splitlines()
        except OSError as e:
            raise CdoError(f"cannot read --http-token-file {token_file}: {e.strerror or e}") from None
        if not token or not token[0].strip():
            raise CdoError(f"--http-token-file {token_file} is empty")
        return token[0].strip()
    return os.environ.get(TOKEN_ENV, "").strip() or None


class WebServer:
    """Serves a :class:`LineView` until :meth:`close`.

    Args:
        view: what to show.
        address: ``--http`` value (see :func:`parse_http_address`).
        token: bearer token, or ``None`` for none (then only loopback addresses are allowed).

    Raises:
        CdoError: bad address, non-loopback without a token, or the address cannot be bound.
    """

    def __init__(self, view: LineView, address: str, token: str | None = None) -> None:
        host, port = parse_http_address(address)
        if token is None and not _loopback(host):
            raise CdoError(f"--http {address} is reachable from other machines: give a token "
                           f"(--http-token-file FILE or {TOKEN_ENV}), or bind 127.0.0.1")
        self.view, self.token = view, token
        self.registry = metrics_registry(view)
        self.page = resources.files(__package__).joinpath("page.html").read_bytes()
        handler = type("Handler", (_Handler,), {"web": self})
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        try:
            self.httpd = server_cls((host, port), handler)
        except OSError as e:
            raise CdoError(f"cannot serve --http {address}: {e.strerror or e}") from None
        self.host, self.port = host, int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="cdo-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "WebServer":
        self._thread.start()
        log.info("live page %s, metrics %smetrics%s", self.url, self.url, " (token required)" if self.token else "")
        return self

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    web: WebServer
    server_version = "cdo-inspect"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        headers = {"Cache-Control": "no-store", **(headers or {})}
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, doc: Any) -> None:
        self._send(code, json.dumps(doc, allow_nan=False, default=str).encode(), "application/json")

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        token = self.web.token
        if token is None:
            return True
        given = self.headers.get("Authorization", "")
        given = given[7:].strip() if given.lower().startswith("bearer ") else (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), token.encode())

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        path, view = url.path, self.web.view
        if path == "/healthz":
            ok, why = view.healthy()
            self._json(200 if ok else 503, {"status": "ok" if ok else "unhealthy", "detail": why})
            return
        if not self._authorised(parse_qs(url.query)):
            self._send(401, b"token required\n", "text/plain", {"WWW-Authenticate": "Bearer"})
            return
        if path in ("/", "/index.html"):
            self._send(200, self.web.page, "text/html; charset=utf-8")
        elif path == "/metrics":
            self._send(200, render(self.web.registry), CONTENT_TYPE)
        elif path == "/api/state":
            self._json(200, view.state())
        elif (m := _THUMB.match(path)) is not None:
            jpeg = view.live.thumbnail(int(m.group(1)))
            if jpeg is None:
                self._send(404, b"no such part kept\n", "text/plain")
            else:
                self._send(200, jpeg, "image/jpeg", {"Cache-Control": "max-age=3600"})
        else:
            self._send(404, b"not found\n", "text/plain")

    do_HEAD = do_GET

    def _read_only(self) -> None:
        self._send(405, b"read-only\n", "text/plain", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _read_only
