"""The Ray connection of the sharded collections of one process.

A process holds one Ray connection at most (``ray.init``). Sharded collections open on
the connection the caller made, else on one simsearch makes (to ``ray_address``, or a
new local cluster) and ends when the last collection that uses it closes. An address
given while connected must name the cluster connected to: Ray would otherwise keep the
connection and the collection would silently live on another cluster than asked.
An address is taken as naming the connected cluster when it is ``"auto"`` (whatever
cluster this machine runs, which is the connected one when connected), the very address
simsearch connected with, or ``host:port`` of the connected cluster's GCS (the host
compared by its IP address). A Ray Client address (``ray://``) of a connection the
caller made cannot be compared with the cluster's GCS address, and is refused: open
with ``ray_address=None`` to use the connection as it is.
"""

from __future__ import annotations

import socket
from typing import Any

from simsearch.errors import ConfigMismatchError, MissingDependencyError

__all__ = ["check_cluster", "join_ray", "leave_ray", "ray_module"]


def ray_module() -> Any:
    """The ``ray`` module, or :class:`~simsearch.MissingDependencyError` naming the extra."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            "sharded collections run on Ray: pip install 'simsearch[ray]'"
        ) from exc
    return ray


#: Sharded collections open in this process on a Ray connection simsearch started: the
#: connection ends with the last of them, not with the first one closed.
_USERS = 0
#: The address simsearch's own connection was made with.
_OURS: str | None = None


def _host_port(address: str) -> tuple[str, str] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    try:
        return socket.gethostbyname(host), port
    except OSError:
        return host, port


def _check_address(ray: Any, address: str) -> None:
    """Refuse ``address`` unless it names the cluster this process is connected to."""
    if address == "auto" or (_USERS > 0 and address == _OURS):
        return
    connected = str(ray.get_runtime_context().gcs_address)
    asked = _host_port(address)
    if asked is not None and asked == _host_port(connected):
        return
    raise ConfigMismatchError(
        f"this process is connected to the Ray cluster at {connected}, not ray_address="
        f"{address!r}: Ray keeps one connection a process, so open with ray_address=None "
        "to use that cluster, or end the connection (ray.shutdown()) first"
    )


def check_cluster(ray: Any, address: str | None) -> None:
    """Refuse an ``address`` that does not name the cluster this process is connected to
    (when it is connected): before anything is written for a collection that cannot open."""
    if address is not None and ray.is_initialized():
        _check_address(ray, address)


def join_ray(ray: Any, address: str | None) -> bool:
    """Connect to Ray unless connected; true when this collection counts toward the
    connection simsearch started (so closing it may end that connection). An ``address``
    other than the connected cluster's raises :class:`~simsearch.ConfigMismatchError`."""
    global _USERS, _OURS
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        _USERS, _OURS = 0, address
    else:
        check_cluster(ray, address)
        if _USERS == 0:
            return False  # the caller's own connection: never ours to end
    _USERS += 1
    return True


def leave_ray(ray: Any) -> None:
    """One collection on simsearch's connection closed: end it after the last one."""
    global _USERS, _OURS
    _USERS -= 1
    if _USERS <= 0:
        _USERS, _OURS = 0, None
        ray.shutdown()
