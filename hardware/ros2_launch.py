"""`robot-rl launch FILE` for `kind: ros2`: the sim bridge and the policy node, as two processes.

    kind: ros2
    bundle: zoo:Hopper-v5_ppo       # the policy; its task is the bridge's model
    namespace: sim                  # both nodes' namespace (topics /sim/joint_states, /sim/commands)
    domain_id: null                 # ROS_DOMAIN_ID for both (null: this shell's)
    localhost_only: true            # discovery limited to this host
    bridge: {episodes: 1, seed: 0}  # ROS parameters of robot_rl_sim_bridge
    node: {trigger: state}          # ROS parameters of robot_rl_policy

The processes are `python -m robot_rl.hardware.ros2_sim_bridge` and `python -m
robot_rl.hardware.ros2_policy_node`, each with `--ros-args -p NAME:=VALUE` for its section (the
bundle given to both) and `-r __ns:=/NAMESPACE`. The runner supervises them: when the bridge ends (its
episodes done) the node is stopped (SIGINT: it deactivates and sends the safe command; then SIGTERM,
then SIGKILL after `stop_timeout`) and the bridge's exit code is returned; if the node ends first
(e.g. it refused to activate, exit code 2) the bridge is stopped and the node's code returned;
`duration` (seconds, 0: none) stops both and returns 0; SIGINT (Ctrl-C) or SIGTERM to the launcher is
forwarded to the node, then the bridge (each killed if it outlives `stop_timeout`), and the launcher
exits 128 + the signal with no child left (`processes.Supervisor`). Children write to
this terminal; the bridge's episode reports are JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from robot_rl.config import check, from_dict
from robot_rl.errors import ConfigError
from robot_rl.hardware.processes import Supervisor


@dataclass(frozen=True)
class Ros2LaunchConfig:
    """A bridged run: one bundle, the sim bridge as its robot, over ROS 2 topics."""

    bundle: str
    """A bundle folder or `zoo:<name>`."""
    namespace: str = ""
    """Namespace of both nodes ("" for the root)."""
    domain_id: int | None = None
    """ROS_DOMAIN_ID of both processes; None: inherited."""
    localhost_only: bool = True
    """Set ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST for both."""
    bridge: dict[str, Any] = field(default_factory=dict)
    """ROS parameters of robot_rl_sim_bridge (see its module)."""
    node: dict[str, Any] = field(default_factory=dict)
    """ROS parameters of robot_rl_policy (see its module)."""
    duration: float = 0.0
    """Seconds before both are stopped; 0: until one ends."""
    stop_timeout: float = 5.0
    """Seconds a stopped child may take before it is killed."""

    def __post_init__(self) -> None:
        check(self.domain_id is None or 0 <= self.domain_id <= 232, "domain_id",
              f"must be in 0..232 (or null), got {self.domain_id}")
        check(self.duration >= 0, "duration", f"must be >= 0 seconds, got {self.duration}")
        check(self.stop_timeout > 0, "stop_timeout", f"must be > 0 seconds, got {self.stop_timeout}")
        check(all(c.isalnum() or c in "_/" for c in self.namespace), "namespace",
              f"{self.namespace!r} is not a ROS namespace (letters, digits, _ and /)")
        for section in ("bridge", "node"):
            values = getattr(self, section)
            check("bundle" not in values, f"{section}.bundle", "is set once, at the top level")


def parse_ros2_config(data: dict[str, Any]) -> Ros2LaunchConfig:
    data = dict(data)
    data.pop("kind", None)
    if "bundle" not in data:
        raise ConfigError("missing key 'bundle' (a bundle folder or zoo:<name>)")
    return from_dict(Ros2LaunchConfig, data)


def ros_args(namespace: str, params: dict[str, Any]) -> list[str]:
    """`--ros-args -r __ns:=/NS -p NAME:=VALUE ...`; values in YAML flow form (lists, quoted strings)."""
    args = ["--ros-args"]
    if namespace:
        args += ["-r", f"__ns:=/{namespace.strip('/')}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={json.dumps(value)}"]  # JSON is YAML: strings stay strings
    return args


def commands(config: Ros2LaunchConfig) -> tuple[list[str], list[str]]:
    """The bridge's and the node's command lines."""
    bridge = [sys.executable, "-m", "robot_rl.hardware.ros2_sim_bridge",
              *ros_args(config.namespace, {"bundle": config.bundle, **config.bridge})]
    node = [sys.executable, "-m", "robot_rl.hardware.ros2_policy_node",
            *ros_args(config.namespace, {"bundle": config.bundle, **config.node})]
    return bridge, node


def environment(config: Ros2LaunchConfig) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if config.domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(config.domain_id)
    if config.localhost_only:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


def run(args: argparse.Namespace) -> int:
    """The `kind: ros2` launch runner (registered in robot_rl.commands.launch.LAUNCH_KINDS)."""
    from robot_rl.config import read_launch_file

    try:
        config = parse_ros2_config(read_launch_file(args.file, args.overrides))
    except ConfigError as err:
        raise ConfigError(f"{args.file}: {err}") from None
    bridge_cmd, node_cmd = commands(config)
    return supervise({"robot_rl_sim_bridge": bridge_cmd, "robot_rl_policy": node_cmd}, environment(config),
                     config.duration, config.stop_timeout)


def supervise(cmds: dict[str, list[str]], env: dict[str, str], duration: float, stop_timeout: float) -> int:
    """Start every command; when the first ends, stop the others (the last started first: the node
    sends the safe command) and return its exit code. SIGINT/SIGTERM: forwarded, 128 + signal."""
    with Supervisor(stop_timeout) as sup:
        procs = {name: sup.start(name, cmd, env) for name, cmd in cmds.items()}
        t0 = time.monotonic()
        while True:
            if sup.stopping:
                name = sup.signal_name
                print(f"robot-rl launch: {name}; stopping the nodes", file=sys.stderr)
                return sup.exit_code()
            for name, p in procs.items():
                if p.poll() is not None:
                    print(f"robot-rl launch: {name} exited ({p.returncode})", file=sys.stderr)
                    return p.returncode
            if duration and time.monotonic() - t0 >= duration:
                print(f"robot-rl launch: {duration:g} s are up", file=sys.stderr)
                return 0
            sup.sleep(0.05)
