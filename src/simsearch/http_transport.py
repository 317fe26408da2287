"""Keep-alive HTTP/1.1 connections from :class:`~simsearch.Client` to one server.

Built on the standard library's :mod:`http.client`: a server answers a search in a
fraction of a millisecond, and a general-purpose client's per-request work (URL and
header models, event hooks, a pool of pools) measured about 0.4 ms a request on
loopback, as much as the search itself. This one keeps what a client of one server
needs: a pool of idle connections (so threads can share a client), a timeout on
every socket operation, and the two failures a caller must tell apart (the server
cannot be reached, or did not answer in time).

Like httpx, it honours the proxy settings of the environment and only those
(``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` as the fallback, ``NO_PROXY``, with or
without a port; read by :func:`urllib.request.getproxies_environment`):
an ``http://`` server is asked through the proxy with the absolute URL, an
``https://`` one through a ``CONNECT`` tunnel, with the proxy URL's user and password
sent as Basic ``Proxy-Authorization``. Proxies are ``http://`` ones.

A pooled connection the server has closed while it sat idle (a restart, an idle
timeout) is noticed before it is reused, by polling its socket: an idle keep-alive
socket that reads as ready holds an end-of-file. Such a connection is dropped and a
new one opened; a request is never sent twice, since after a failure mid-request it
cannot be known whether the server acted on it.
"""

from __future__ import annotations

import base64
import functools
import http.client
import importlib.metadata
import json
import select
import socket
import ssl
import sys
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urlsplit

from simsearch.errors import InvalidArgumentError

__all__ = ["ConnectionPool", "Reply", "TransportTimeoutError", "TransportUnavailableError"]

#: ``NO_PROXY``'s test (public, but missing from the type stubs).
_BYPASS: Callable[[str, dict[str, str]], bool]
_BYPASS = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
#: Idle connections kept per client (more are closed when returned).
MAX_IDLE = 8
#: Characters a path keeps as they are; any other is percent-encoded (UTF-8).
_PATH_SAFE = "/%:@!$&'()*+,;=?~"


class TransportUnavailableError(Exception):
    """The server could not be reached, or dropped the connection mid-request."""


class TransportTimeoutError(TransportUnavailableError):
    """The server did not answer within the timeout."""


@dataclass(frozen=True)
class Reply:
    """One response: its status and its whole body."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class ConnectionPool:
    """Connections to the server at ``url`` (``http://`` or ``https://``, with an
    optional path prefix), each request sent with ``headers``."""

    def __init__(self, url: str, *, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(
                f"a server URL is http://host[:port] or https://host[:port], not {url!r}"
            )
        self._https = parts.scheme == "https"
        try:
            # Given explicitly: http.client would read an IPv6 address's last group as a port.
            self._port = parts.port or (443 if self._https else 80)
        except ValueError as exc:
            raise InvalidArgumentError(f"the server URL {url!r} has a bad port: {exc}") from None
        if parts.username is not None:
            raise InvalidArgumentError(
                "a server URL carries no user or password: pass the API key as api_key="
            )
        try:  # a name in any script travels as its IDNA (xn--) form
            self._host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidArgumentError(f"the server URL {url!r} has an invalid host") from None
        self._prefix = quote(parts.path.rstrip("/"), safe=_PATH_SAFE)
        self._headers = {
            "Accept": "application/json",
            "User-Agent": _user_agent(),
            **headers,
        }
        self._timeout = timeout
        self._ssl = _ssl_context() if self._https else None
        self._proxy = _proxy_for(parts.scheme, self._host, self._port, url)
        self._tunnel_headers: dict[str, str] = {}
        if self._proxy is not None:
            auth = _proxy_authorization(self._proxy)
            if self._https:
                if ":" in self._host and sys.version_info < (3, 12):
                    # Python 3.11 writes CONNECT without the brackets an IPv6 address needs.
                    raise InvalidArgumentError(
                        "an IPv6 https server cannot be reached through a proxy on Python "
                        f"3.11; set NO_PROXY to reach {url} directly"
                    )
                self._tunnel_headers = auth
            else:
                # Through an http proxy the request line names the whole URL.
                netloc = f"[{self._host}]" if ":" in self._host else self._host
                self._prefix = f"http://{netloc}:{self._port}{self._prefix}"
                self._headers.update(auth)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def send(self, method: str, path: str, body: Any = None) -> Reply:
        """Send one request (``body`` as JSON) and read its whole response."""
        payload = None
        headers = self._headers
        if body is not None:
            payload = json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
            headers = {**headers, "Content-Type": "application/json"}
        target = self._prefix + quote(path, safe=_PATH_SAFE)
        conn = self._take()
        try:
            conn.request(method, target, body=payload, headers=headers)
            response = conn.getresponse()
            content = response.read()
        except TimeoutError:
            conn.close()
            raise TransportTimeoutError("timed out") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise TransportUnavailableError(str(exc) or type(exc).__name__) from exc
        except BaseException:  # interrupted mid-request: the connection's state is unknown
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return Reply(response.status, content)

    def close(self) -> None:
        """Close every idle connection (one in use closes when its request ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect()
            if not _closed_by_server(conn):
                return conn
            conn.close()

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self._host, self._port
        if self._proxy is not None:
            host, port = self._proxy.hostname or "", self._proxy.port or 80
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
        if self._https and self._proxy is not None:
            conn.set_tunnel(self._host, self._port, headers=self._tunnel_headers)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise TransportTimeoutError("timed out while connecting") from None
        except OSError as exc:
            conn.close()
            raise TransportUnavailableError(str(exc) or type(exc).__name__) from exc
        if conn.sock is not None:
            # Requests are small and answered at once: send each without waiting to
            # coalesce it with more (Nagle's algorithm would hold it back ~40 ms).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn


def _closed_by_server(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection's socket is gone or reads as ready (an end-of-file:
    an idle keep-alive connection has nothing else to read)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):  # not limited to descriptors below FD_SETSIZE
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


@functools.cache
def _user_agent() -> str:
    try:
        return f"simsearch/{importlib.metadata.version('simsearch')}"
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "simsearch"


def _ssl_context() -> ssl.SSLContext:
    """Certificates verified against certifi's roots where it is installed (as httpx did),
    else the system's."""
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _proxy_for(scheme: str, host: str, port: int, url: str) -> SplitResult | None:
    """The environment's proxy for ``scheme`` (else ``ALL_PROXY``'s) unless ``NO_PROXY``
    exempts the host (with or without its port); system settings are not read."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or _BYPASS(f"{host}:{port}", proxies):
        return None
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    try:
        parts.port  # noqa: B018  (parsing it checks it)
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidArgumentError(
            f"the {scheme} proxy set in the environment ({parts.scheme}://...) is not an "
            f"http:// proxy with a host, which is what simsearch's client can use; set "
            f"NO_PROXY to reach {url} directly"
        )
    return parts


def _proxy_authorization(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}
