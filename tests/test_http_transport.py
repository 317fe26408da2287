"""The client's HTTP transport against a small standard-library server on 127.0.0.1:
keep-alive reuse, a connection the server closed while idle, timeouts, unreachable
servers, path prefixes, errors and threads sharing one client."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import simsearch
from simsearch.http_transport import ConnectionPool


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[tuple[str, str, Any]] = []
        self.say_close = False  # answer with "Connection: close"
        self.drop = False  # close the connection after answering, without saying so
        self.delay = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((self.command, self.path, body))
        # Read before answering: the client may change the switch as soon as it has the answer.
        drop = self.server.drop
        time.sleep(self.server.delay)
        if self.path.endswith("/missing"):
            status, out = 404, {"error": {"code": "collection_not_found", "message": "no c"}}
        elif self.path.endswith("/unfit"):
            status, out = 422, [{"loc": ["body"], "msg": "unfit"}]
        else:
            status, out = 200, {"path": self.path, "auth": self.headers.get("Authorization")}
            out["agent"] = self.headers.get("User-Agent")
            if self.headers.get("Proxy-Authorization"):
                out["proxy_auth"] = self.headers["Proxy-Authorization"]
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.server.say_close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        if drop:
            self.close_connection = True

    def do_CONNECT(self) -> None:
        self.server.requests.append((self.command, self.path, None))
        self.send_response(200)
        self.end_headers()
        self.close_connection = True  # no TLS behind this tunnel: the handshake fails

    do_GET = do_POST = do_DELETE = _answer  # noqa: N815  (the names http.server calls)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_requests_reuse_one_connection_and_send_json_with_the_key(server: _Server) -> None:
    with simsearch.Client(server.url, api_key="secret") as client:
        for i in range(20):
            got = client.request("POST", "/x", {"i": i, "word": "naïve"})
            assert (got["path"], got["auth"]) == ("/x", "Bearer secret")
    assert server.connections == 1
    assert server.requests[3] == ("POST", "/x", {"i": 3, "word": "naïve"})


def test_a_connection_the_server_closed_while_idle_is_replaced_and_nothing_is_sent_twice(
    server: _Server,
) -> None:
    pool = ConnectionPool(server.url, headers={}, timeout=10)
    server.drop = True
    pool.send("GET", "/a")  # pooled: the answer did not say it would close
    assert len(pool._idle) == 1
    server.drop = False
    time.sleep(0.1)  # the server's end-of-file reaches the idle socket
    assert pool.send("GET", "/b").json()["path"] == "/b"
    assert [r[1] for r in server.requests] == ["/a", "/b"]
    assert server.connections == 2


def test_an_answer_that_says_connection_close_is_not_pooled(server: _Server) -> None:
    pool = ConnectionPool(server.url, headers={}, timeout=10)
    server.say_close = True
    pool.send("GET", "/a")
    assert pool._idle == []
    server.say_close = False
    pool.send("GET", "/b")
    assert len(pool._idle) == 1
    assert server.connections == 2


def test_a_slow_answer_is_a_timeout_and_the_client_recovers(server: _Server) -> None:
    client = simsearch.Client(server.url, timeout=0.2)
    server.delay = 1.0
    with pytest.raises(simsearch.ServerUnavailableError, match=r"did not answer within 0\.2 s"):
        client.request("GET", "/slow")
    server.delay = 0.0
    assert client.request("GET", "/fast")["path"] == "/fast"


def test_an_unreachable_server_is_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    client = simsearch.Client(f"http://127.0.0.1:{port}")
    with pytest.raises(simsearch.ServerUnavailableError, match=f"cannot reach .*:{port}"):
        client.health()


def test_a_path_prefix_is_kept_and_server_errors_come_back_as_their_class(
    server: _Server,
) -> None:
    client = simsearch.Client(server.url + "/api/")
    assert client.request("GET", "/health")["path"] == "/api/health"
    with pytest.raises(simsearch.CollectionNotFoundError, match="no c"):
        client.request("GET", "/collections/missing")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "127.0.0.1:8000", "http://h:99999", "http://"])
def test_a_bad_url_is_refused(url: str) -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match="URL"):
        simsearch.Client(url)


def test_an_ipv6_url_without_a_port_takes_the_scheme_default() -> None:
    assert ConnectionPool("http://[::1]", headers={}, timeout=1)._port == 80
    assert ConnectionPool("https://[::1]/p", headers={}, timeout=1)._port == 443


def test_threads_share_one_client(server: _Server) -> None:
    client = simsearch.Client(server.url)

    def work(t: int) -> list[str]:
        return [client.request("GET", f"/t{t}/{i}")["path"] for i in range(25)]

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(work, range(4)))
    assert got == [[f"/t{t}/{i}" for i in range(25)] for t in range(4)]
    assert server.connections <= 4


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_an_http_server_is_asked_through_the_environments_proxy(
    server: _Server, proxy_env: pytest.MonkeyPatch
) -> None:
    port = server.server_address[1]
    proxy_env.setenv("http_proxy", f"http://ann:p%40ss@127.0.0.1:{port}")
    client = simsearch.Client("http://search.example:8000/api", api_key="k")
    got = client.request("POST", "/collections", {"name": "c"})
    assert got["path"] == "http://search.example:8000/api/collections"  # the whole URL
    assert got["auth"] == "Bearer k"
    assert got["proxy_auth"] == "Basic " + base64.b64encode(b"ann:p@ss").decode()


def test_no_proxy_exempts_a_host(server: _Server, proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("http_proxy", server.url)
    proxy_env.setenv("no_proxy", "search.invalid")
    with pytest.raises(simsearch.ServerUnavailableError, match="cannot reach"):
        simsearch.Client("http://search.invalid:8000", timeout=5).health()
    assert server.requests == []  # asked directly, not through the proxy


def test_an_https_server_is_reached_through_a_connect_tunnel(
    server: _Server, proxy_env: pytest.MonkeyPatch
) -> None:
    proxy_env.setenv("https_proxy", server.url)
    with pytest.raises(simsearch.ServerUnavailableError, match="cannot reach"):
        simsearch.Client("https://search.example", timeout=5).health()
    assert server.requests == [("CONNECT", "search.example:443", None)]


def test_a_proxy_the_client_cannot_use_is_named(proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("http_proxy", "socks5://127.0.0.1:1080")
    with pytest.raises(simsearch.InvalidArgumentError, match=r"not an http:// proxy.*NO_PROXY"):
        simsearch.Client("http://search.example:8000")


def test_paths_in_any_script_are_percent_encoded_and_the_client_names_itself(
    server: _Server,
) -> None:
    client = simsearch.Client(server.url + "/wö rk")
    got = client.request("GET", "/collections/naïve?x=1")
    assert got["path"] == "/w%C3%B6%20rk/collections/na%C3%AFve?x=1"
    assert got["agent"].startswith("simsearch")


def test_a_schema_refusal_with_a_list_body_is_invalid_input(server: _Server) -> None:
    with pytest.raises(simsearch.InvalidInputError, match="unfit"):
        simsearch.Client(server.url).request("POST", "/unfit", {})


def test_a_url_with_a_user_and_password_is_refused() -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match="api_key"):
        simsearch.Client("http://ann:secret@127.0.0.1:8000")


def test_all_proxy_is_the_fallback_and_no_proxy_may_name_a_port(
    server: _Server, proxy_env: pytest.MonkeyPatch
) -> None:
    proxy_env.setenv("all_proxy", server.url)
    got = simsearch.Client("http://search.example:8000").request("GET", "/x")
    assert got["path"] == "http://search.example:8000/x"
    proxy_env.setenv("no_proxy", "search.example:8000")
    with pytest.raises(simsearch.ServerUnavailableError):
        simsearch.Client("http://search.example:8000", timeout=5).request("GET", "/y")
    assert [r[1] for r in server.requests] == ["http://search.example:8000/x"]


def test_https_checks_the_servers_certificate_and_name() -> None:
    import ssl

    context = ConnectionPool("https://search.example", headers={}, timeout=1)._ssl
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    try:
        import certifi  # noqa: F401
    except ImportError:
        return  # the system's roots load lazily, so there is no count to check
    assert context.cert_store_stats()["x509_ca"] > 0  # certifi's roots are loaded
