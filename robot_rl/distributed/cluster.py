"""Connecting to Ray: a local instance (no address), the running cluster on this machine (`auto`), a
head node's GCS (`HOST:PORT`) or a Ray Client server (`ray://HOST:PORT`).

An address that does not answer is one RobotRLError within 30 s: the port is probed with a plain TCP
connection (5 s), then a child process tries `ray.init` on it (killed after 15 s), because Ray itself
retries for minutes against a port that accepts connections but is no Ray server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

from robot_rl.errors import ConfigError, RobotRLError

PROBE_TIMEOUT_S = 5.0
RAY_PROBE_TIMEOUT_S = 15.0
RAY_INSTALL_HINT = 'the distributed extra is not installed: pip install -e ".[distributed]" (ray[tune])'


class ClusterUnreachable(RobotRLError):
    """No Ray cluster answers at the given address."""


def import_ray() -> Any:
    """`ray`, or a RobotRLError saying which extra installs it.

    Ray Client's connection attempts wait 5, 10 and 15 s by default (read at import): 3 and 5 s keep an
    address that accepts TCP but is no Ray server (a proxy, another service) under 30 s in all.
    """
    os.environ.setdefault("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "3")
    os.environ.setdefault("RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S", "5")
    try:
        import ray
    except ImportError:
        raise RobotRLError(RAY_INSTALL_HINT) from None
    return ray


def split_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` or `ray://HOST:PORT` → (host, port); ConfigError naming --address otherwise."""
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port)


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise ClusterUnreachable unless something accepts a TCP connection at the address's port."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as err:
        raise ClusterUnreachable(
            f"--address {address}: no Ray cluster answers ({err.strerror or err}); start one with "
            f"`ray start --head` on the head machine (see the README, Scale out on Ray)") from None


def probe_ray(address: str, timeout_s: float = RAY_PROBE_TIMEOUT_S) -> None:
    """Raise ClusterUnreachable unless `ray.init(address)` succeeds in a child process within `timeout_s`."""
    code = ("import sys, ray\n"
            "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
            "print(int(ray.cluster_resources().get('CPU', 0)))\n")
    try:
        result = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True,
                                timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        said = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else (err.stderr or "")
        if "InvalidAuthToken" in said:
            raise ClusterUnreachable(f"--address {address}: the Ray cluster refused this machine's "
                                     f"authentication token; give it the cluster's token (RAY_AUTH_TOKEN or "
                                     f"~/.ray/auth_token, Ray's token authentication)") from None
        raise ClusterUnreachable(f"--address {address}: something listens there, but no Ray cluster answered "
                                 f"within {timeout_s:.0f} s") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ClusterUnreachable(f"--address {address}: Ray could not connect ({last}); start a cluster with "
                                 f"`ray start --head`")


def connect(address: str | None, num_cpus: int | None = None) -> Any:
    """`ray.init` for the address: None starts a local instance (with `num_cpus` CPUs, default all).

    Returns the ray module. Ray's own log noise stays at warnings; each trial writes its own log in its
    run directory. Every node must have robot_rl installed (the workers import it by name).
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
    if address is None:
        # "local": a new instance even where `ray start` runs a cluster here (ray.init() would join that)
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
        return ray
    if num_cpus is not None:
        raise ConfigError("--num-cpus applies to a local Ray instance only; a cluster has its own CPUs")
    if address != "auto":
        probe(address)
    probe_ray(address)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as err:
        raise ClusterUnreachable(f"--address {address}: Ray could not connect: {str(err).splitlines()[0]}; "
                                 f"start a cluster with `ray start --head`") from None
    return ray
