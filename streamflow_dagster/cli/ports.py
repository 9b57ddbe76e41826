"""Is a port free to listen on? Asked before a command loads or starts anything."""

from __future__ import annotations

import errno
import socket

import click


def ensure_port_free(host: str, port: int, option: str = "--port") -> None:
    """A click.UsageError (exit 2) naming the port and what to do when `host:port` cannot be
    listened on: in use, reserved for root, or an address this machine does not have."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the servers do (uvicorn, http.server): a port left in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise click.UsageError(port_problem(host, port, error, option)) from None


def port_problem(host: str, port: int, error: OSError, option: str = "--port") -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use: stop what listens there "
            f"(`ss -ltnp 'sport = :{port}'` shows it) or choose another port with {option}"
        )
    if error.errno == errno.EACCES:
        return (
            f"port {port} needs root (ports below 1024 are privileged): use {option} 1024 or more"
        )
    if error.errno in (errno.EADDRNOTAVAIL, socket.EAI_NONAME, socket.EAI_AGAIN):
        return f"cannot listen on {host}:{port}: {host} is not an address of this machine"
    return f"cannot listen on {host}:{port}: {error.strerror or error}"
