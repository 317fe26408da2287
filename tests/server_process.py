"""Start `simsearch serve` on 127.0.0.1 at a free port for a test, and stop it afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

KEYS = {
    "admin": "admin-secret-0001",
    "writer": "writer-secret-0002",  # write on "docs"
    "reader": "reader-secret-0003",  # read on "docs"
    "other": "other-secret-00004",  # write on "other" only
    "all-read": "allread-secret-05",  # read on every collection
}


def key_file(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "keys": [
                    {"name": "admin", "key": KEYS["admin"], "admin": True},
                    {"name": "writer", "key": KEYS["writer"], "collections": {"docs": "write"}},
                    {"name": "reader", "key": KEYS["reader"], "collections": {"docs": "read"}},
                    {"name": "other", "key": KEYS["other"], "collections": {"other": "write"}},
                    {"name": "all-read", "key": KEYS["all-read"], "collections": {"*": "read"}},
                ]
            }
        )
    )
    path.chmod(0o600)  # as a key file should be: the server warns about one others can read
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(
    data_dir: Path,
    *,
    keys: Path | None = None,
    extra: list[str] | None = None,
    create: bool = True,
) -> Iterator[Server]:
    """`simsearch serve data_dir` (with --create unless told not to) until the block ends."""
    port = free_port()
    log = data_dir.parent / f"server-{port}.log"
    args = [sys.executable, "-m", "simsearch.cli", "serve", str(data_dir), "--port", str(port)]
    if create:
        args.append("--create")
    if keys is not None:
        args += ["--api-keys", str(keys)]
    with log.open("wb") as sink:
        process = subprocess.Popen(args + (extra or []), stdout=sink, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.time() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {server.output()}")
            try:
                if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the server did not start: {server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def serving_in_thread(settings: Any) -> Iterator[str]:
    """The app of ``settings`` served by uvicorn on 127.0.0.1 in a thread of this process
    (so a test can reach into it: a Ray cluster it is connected to, a patched method)."""
    import uvicorn

    from simsearch.server.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(
        create_app(settings), log_level="warning", access_log=False, http="h11", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
