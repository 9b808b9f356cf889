"""`robot-rl launch FILE` for `kind: hil`: the firmware emulator and a serial deployment, together.

    kind: hil
    bundle: zoo:InvertedPendulum-v5_ppo      # the policy; its task is the emulator's plant
    emulator: {rate: 1000, seed: 0, faults: []}
    deploy: {duration: 10.0}

Two processes: `robot-rl emulate --task TASK --link LINK` and, once LINK exists, `robot-rl deploy
BUNDLE --backend serial --port LINK --duration S`. The runner supervises both
(`processes.Supervisor`): when the deployment ends, the emulator is stopped (SIGINT, SIGTERM, then
SIGKILL after `stop_timeout`) and the deployment's exit code is returned; if the emulator dies first,
the deployment is stopped and the run fails; SIGINT (Ctrl-C) or SIGTERM to the launcher is forwarded
to the deployment (it sends the safe command and DISABLE, and prints its report), then to the
emulator, each killed if it outlives `stop_timeout`, and the launcher exits 128 + the signal; no child
and no temporary folder is left behind. Children write to this terminal (the emulator's lines start
with "robot-rl emulate:").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from robot_rl.config import check, from_dict
from robot_rl.errors import ConfigError
from robot_rl.hardware.processes import Supervisor


@dataclass(frozen=True)
class EmulatorConfig:
    """The emulated device (see `robot-rl emulate --help`)."""

    rate: float = 1000.0
    """Firmware loop rate, Hz."""
    seed: int = 0
    """Seed of the plant's initial state and of the injected faults."""
    faults: tuple[str, ...] = ()
    """`--fault` items, e.g. ["drop=0.01", "corrupt=0.001"]."""
    link: str | None = None
    """Where to link the device's tty; None: a fresh temporary path."""

    def __post_init__(self) -> None:
        check(0 < self.rate <= 20000, "emulator.rate", f"must be in (0, 20000] Hz, got {self.rate}")


@dataclass(frozen=True)
class DeployConfig:
    """The host side (see `robot-rl deploy --help`)."""

    duration: float = 10.0
    """Seconds to run the policy."""
    args: tuple[str, ...] = ()
    """Extra arguments for `robot-rl deploy`, e.g. ["--json"]."""

    def __post_init__(self) -> None:
        check(self.duration > 0, "deploy.duration", f"must be > 0 seconds, got {self.duration}")


@dataclass(frozen=True)
class HilConfig:
    """A hardware-in-the-loop run: one bundle, the emulator as its robot, over a real pseudo-terminal."""

    bundle: str
    """A bundle folder or `zoo:<name>`."""
    task: str | None = None
    """The emulator's plant; None: the bundle's own task."""
    emulator: EmulatorConfig = field(default_factory=EmulatorConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    startup_timeout: float = 60.0
    """Seconds to wait for the emulator's port to appear."""
    stop_timeout: float = 5.0
    """Seconds a stopped child may take before it is killed."""


def parse_hil_config(data: dict) -> HilConfig:
    data = dict(data)
    data.pop("kind", None)
    if "bundle" not in data:
        raise ConfigError("missing key 'bundle' (a bundle folder or zoo:<name>)")
    return from_dict(HilConfig, data)


def emulator_command(task: str, link: str, config: EmulatorConfig) -> list[str]:
    cmd = [sys.executable, "-m", "robot_rl.cli", "emulate", "--task", task, "--link", link,
           "--rate", f"{config.rate:g}", "--seed", str(config.seed)]
    for fault in config.faults:
        cmd += ["--fault", fault]
    return cmd


def deploy_command(bundle: str, link: str, config: DeployConfig, json_output: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "robot_rl.cli", "deploy", bundle, "--backend", "serial", "--port", link,
           "--duration", f"{config.duration:g}", *config.args]
    if json_output and "--json" not in cmd:
        cmd.append("--json")
    return cmd


def run(args: argparse.Namespace) -> int:
    """The `kind: hil` launch runner (registered in robot_rl.commands.launch.LAUNCH_KINDS)."""
    from robot_rl.config import read_launch_file

    try:
        config = parse_hil_config(read_launch_file(args.file, args.overrides))
    except ConfigError as err:
        raise ConfigError(f"{args.file}: {err}") from None
    task = config.task or bundle_task(config.bundle)
    if config.emulator.link is not None and os.path.lexists(config.emulator.link):
        # the emulator would refuse it, and the wait for the port would take the old one for ours
        raise ConfigError(f"{args.file}: emulator.link: {config.emulator.link} already exists; remove it "
                          f"or choose another path (the emulator never takes over a link it did not make)")
    # the supervisor first: a signal between the folder's creation and the children's start still
    # ends in the `with` blocks, which stop the children and then remove the folder
    with Supervisor(config.stop_timeout) as sup, tempfile.TemporaryDirectory(prefix="robot_rl_hil_") as tmp:
        link = config.emulator.link or str(Path(tmp) / "device_tty")
        return supervise(sup, emulator_command(task, link, config.emulator),
                         deploy_command(config.bundle, link, config.deploy, getattr(args, "json", False)),
                         link, config.startup_timeout)


def bundle_task(bundle: str) -> str:
    """The task of a bundle, read from its manifest (numpy only)."""
    from robot_rl.policies import read_bundle, resolve

    return read_bundle(resolve(bundle)).manifest.spec.name


def supervise(sup: Supervisor, emulator_cmd: list[str], deploy_cmd: list[str], link: str,
              startup_timeout: float) -> int:
    """Start the emulator, wait for its port, run the deployment. `sup`'s block stops both whatever
    happens (the deployment first, so its DISABLE reaches the device). SIGINT/SIGTERM: 128 + signal."""
    emulator = sup.start("the emulator", emulator_cmd)
    deadline = time.monotonic() + startup_timeout
    while not os.path.exists(link):
        if sup.stopping:
            return sup.exit_code()
        if emulator.poll() is not None:
            print(f"robot-rl launch: the emulator exited ({emulator.returncode}) before its port "
                  f"appeared", file=sys.stderr)
            return emulator.returncode or 1
        if time.monotonic() > deadline:
            print(f"robot-rl launch: the emulator's port {link} did not appear within "
                  f"{startup_timeout:g} s", file=sys.stderr)
            return 1
        sup.sleep(0.05)
    deploy = sup.start("the deployment", deploy_cmd)
    while True:
        if sup.stopping:
            print(f"robot-rl launch: {sup.signal_name}; stopping the "
                  f"deployment and the emulator", file=sys.stderr)
            return sup.exit_code()
        if deploy.poll() is not None:
            return deploy.returncode
        if emulator.poll() is not None:
            print(f"robot-rl launch: the emulator exited ({emulator.returncode}) during the "
                  f"deployment; stopping it", file=sys.stderr)
            return emulator.returncode or 1
        sup.sleep(0.05)
