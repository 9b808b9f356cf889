"""The firmware emulator: a microcontroller on the far side of a pseudo-terminal, with a MuJoCo plant.

It opens a pseudo-terminal (`os.openpty()`), keeps the device end, and offers the other end as the
serial port a host opens (its path is printed, or symlinked at `link`). It speaks the protocol of
`robot_rl.hardware.protocol` exactly as firmware would, and runs the task's own MuJoCo model as the
plant, with a firmware loop at `rate_hz` (1 kHz by default):

    every tick:   handle the bytes received -> watchdog
                  -> on a control-period boundary (CONFIG): sample the state and stream STATE
                  -> in the middle of a physics step: control law -> integrate that step

The physics steps at the model's own timestep (the one the policy was trained with: 2 ms for Hopper,
20 ms for InvertedPendulum), a whole number of ticks, with zero-order hold; a command takes effect at
the step boundary nearest to when the firmware took it (each step is integrated at its middle tick),
an error of at most half a step either way. `physics_dt` may refine the step (MuJoCo's contact
dynamics then differ from training's: the zoo Hopper loses about half its return at 1 ms).

- Control laws (per joint, MuJoCo control units = torque / gear): TORQUE applies the setpoint; POSITION
  runs a PD to the target, VELOCITY a D to the target velocity, with gains from the joint's inertia
  (`dof_M0`) for a 10 Hz critically damped loop. Every command is clipped to the actuator's range, and
  torque that pushes a joint further past its position limit is cut (JOINT_LIMIT fault).
- Watchdog: enabled and no valid SETPOINT for `watchdog_us` -> the safe state (DAMPING: -kd·velocity,
  or HOLD: PD to the positions at that moment) from the next tick on, latched until the next ENABLE.
- Time: the device clock is the simulated time, advancing at `speed` times real time (1: real time).
  When the process falls behind (descheduled), it reads what arrived and then runs the missed ticks.
  Until the first ENABLE after start (or RESET_PLANT) the plant is frozen, like a robot on its stand.
- Faults on the outgoing stream (the `faults` flags or an INJECT message): drop, corrupt (one bit flip
  per frame hit), delay, garbage between frames, truncate, mute, and disconnect (close the pty, open
  a new one after a while, and re-point the link). SIGUSR1 to `robot-rl emulate` disconnects for 1 s.

MuJoCo is imported by `MujocoPlant` only; the protocol side is plain Python.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import random
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.hardware import protocol as P

MAX_CATCH_UP = 1000
"""Ticks the emulator runs back to back to catch up after its process was descheduled; beyond
that, device time jumps (counted in `overruns`) and the physics misses the rest."""
LIMIT_HYSTERESIS = 0.01
"""rad or m a joint must move away from its limit before reaching it again is a new JOINT_LIMIT."""
PD_FREQUENCY_HZ = 10.0
"""Natural frequency of the emulator's position/damping loops (critically damped)."""


# --------------------------------------------------------------------------------------------------
# Plant


class MujocoPlant:
    """The task's MuJoCo model (from `robot_rl.sim.make_env(task).unwrapped`) stepped one tick at a time.

    State fields offered: the task spec's `state_fields` (e.g. qpos, qvel, cfrc_ext), plus qpos and
    qvel, which hold the actuated joints' positions and velocities (the joint map points into them).
    """

    def __init__(self, task: str, seed: int = 0, physics_dt: float | None = None) -> None:
        import mujoco

        from robot_rl.sim import get_spec, make_env

        self._mujoco = mujoco
        env = make_env(task, seed=seed).unwrapped
        simulator = getattr(env, "simulator", env)
        if not hasattr(simulator, "model") or not hasattr(simulator, "data"):
            raise ConfigError(f"task {task!r} has no MuJoCo model to emulate; the emulator runs the "
                              f"Gymnasium MuJoCo tasks (InvertedPendulum-v5, Hopper-v5, ...)")
        self.task = task
        self.env, self.simulator = env, simulator
        self.model, self.data = simulator.model, simulator.data
        spec = get_spec(task)
        self.spec = spec
        m = self.model
        if physics_dt is not None:
            if not 0 < physics_dt <= m.opt.timestep:
                raise ConfigError(f"physics_dt: {physics_dt} s must be in (0, {m.opt.timestep}] "
                                  f"(the model's own step)")
            m.opt.timestep = physics_dt
        self.dt = float(m.opt.timestep)
        """Physics step, seconds."""

        names = list(spec.state_fields)
        for required in ("qpos", "qvel"):
            if required not in names:
                names.append(required)
        sizes = {"qpos": m.nq, "qvel": m.nv, **dict(spec.state_fields)}
        self.fields: tuple[tuple[str, int], ...] = tuple((n, int(sizes[n])) for n in names)
        qpos_field, qvel_field = names.index("qpos"), names.index("qvel")

        joints, dofs, qadr = [], [], []
        for i in range(m.nu):
            j = int(m.actuator_trnid[i, 0])
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
            lo, hi = (float(v) for v in m.jnt_range[j]) if m.jnt_limited[j] else (-math.inf, math.inf)
            clo, chi = (float(v) for v in m.actuator_ctrlrange[i]) if m.actuator_ctrllimited[i] \
                else (-math.inf, math.inf)
            joints.append(P.JointInfo(name, qpos_field, int(m.jnt_qposadr[j]), qvel_field,
                                      int(m.jnt_dofadr[j]), (lo, hi), (clo, chi)))
            dofs.append(int(m.jnt_dofadr[j]))
            qadr.append(int(m.jnt_qposadr[j]))
        self.joints = tuple(joints)
        self._dof = np.array(dofs, dtype=np.intp)
        self._qadr = np.array(qadr, dtype=np.intp)
        self.position_low = np.array([j.position_limits[0] for j in joints])
        self.position_high = np.array([j.position_limits[1] for j in joints])
        self.command_low = np.array([j.command_limits[0] for j in joints])
        self.command_high = np.array([j.command_limits[1] for j in joints])
        gear = m.actuator_gear[:, 0].copy()
        inertia = m.dof_M0[self._dof]
        w = min(2 * math.pi * PD_FREQUENCY_HZ, 0.5 / self.dt)  # stable at the physics step
        self.kp = inertia * w * w / gear  # control units per rad (or m)
        self.kd = 2 * inertia * w / gear   # control units per rad/s
        self._initial = (self.data.qpos.copy(), self.data.qvel.copy())
        self._wants_contact_forces = "cfrc_ext" in names
        self.reset(seed)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def reset(self, seed: int | None = None) -> None:
        """Gymnasium's own reset (its initial-state noise), seeded."""
        self.simulator.reset(seed=seed)
        self.data.ctrl[:] = 0.0
        self._mujoco.mj_forward(self.model, self.data)

    def positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def velocities(self) -> np.ndarray:
        return self.data.qvel[self._dof].copy()

    def step(self, ctrl: np.ndarray) -> None:
        """One physics step (`dt`) with the actuators' controls `ctrl` (num_joints,)."""
        self.data.ctrl[:] = ctrl
        self._mujoco.mj_step(self.model, self.data)

    def sample(self, names: list[str]) -> np.ndarray:
        """The named fields, flattened and concatenated, float32."""
        if self._wants_contact_forces and "cfrc_ext" in names:
            self._mujoco.mj_rnePostConstraint(self.model, self.data)
        return np.concatenate([getattr(self.data, n).ravel() for n in names]).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Fault injection on the outgoing byte stream


@dataclasses.dataclass
class FaultConfig:
    """Faults applied to every frame the emulator sends (probabilities per frame, times in seconds)."""

    drop: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    garbage: float = 0.0
    truncate: float = 0.0
    mute: bool = False
    disconnect_at: float | None = None
    """Close the pseudo-terminal this many seconds after start ..."""
    disconnect_for: float = 1.0
    """... for this long."""

    def __post_init__(self) -> None:
        for key in ("drop", "corrupt", "garbage", "truncate"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault {key}: a probability in [0, 1], got {value}")
        if self.delay < 0 or self.disconnect_for < 0:
            raise ConfigError("fault delay/disconnect: seconds must be >= 0")


FAULT_FLAGS = ("drop", "corrupt", "delay", "garbage", "truncate", "mute", "disconnect")


def parse_faults(items: list[str]) -> FaultConfig:
    """`--fault KIND=VALUE` items -> FaultConfig; `disconnect=AT:FOR` (seconds), `mute` alone means on."""
    config: dict[str, Any] = {}
    for item in items:
        kind, _, value = item.partition("=")
        kind = kind.strip()
        if kind not in FAULT_FLAGS:
            raise ConfigError(f"--fault {item!r}: unknown fault; choose one of: {', '.join(FAULT_FLAGS)}")
        try:
            if kind == "mute":
                config["mute"] = value.strip().lower() not in ("0", "false", "off")
            elif kind == "disconnect":
                at, _, dur = value.partition(":")
                config["disconnect_at"] = float(at)
                if dur:
                    config["disconnect_for"] = float(dur)
            else:
                config[kind] = float(value)
        except ValueError:
            raise ConfigError(f"--fault {item!r}: expected {kind}=NUMBER"
                              + (" (disconnect=AT:FOR seconds)" if kind == "disconnect" else "")) from None
    return FaultConfig(**config)


class FaultInjector:
    """Turns one frame into what goes on the wire: nothing, a damaged copy, extra garbage, later."""

    def __init__(self, config: FaultConfig, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.probability = {k: getattr(config, k) for k in ("drop", "corrupt", "garbage", "truncate")}
        self.delay = config.delay
        self.mute = config.mute
        self.until: dict[str, float] = {}
        self.counts = {"dropped": 0, "corrupted": 0, "garbage": 0, "truncated": 0}

    def set(self, kind: str, value: float, until: float | None) -> None:
        if kind == "delay":
            self.delay = value
        elif kind == "mute":
            self.mute = bool(value)
        else:
            self.probability[kind] = value
        if until is None:
            self.until.pop(kind, None)
        else:
            self.until[kind] = until

    def clear(self) -> None:
        for kind in self.probability:
            self.probability[kind] = 0.0
        self.delay, self.mute = 0.0, False
        self.until.clear()

    def expire(self, now: float) -> None:
        for kind, until in list(self.until.items()):
            if now >= until:
                self.set(kind, 0.0, None)

    def apply(self, frame: bytes) -> bytes:
        """The bytes to send for `frame` (possibly b"")."""
        rng, p = self.rng, self.probability
        if self.mute:
            return b""
        if p["drop"] and rng.random() < p["drop"]:
            self.counts["dropped"] += 1
            return b""
        out = bytearray(frame)
        if p["truncate"] and rng.random() < p["truncate"]:
            self.counts["truncated"] += 1
            del out[rng.randrange(1, len(out) - 1):]
        if p["corrupt"] and rng.random() < p["corrupt"]:
            self.counts["corrupted"] += 1
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        if p["garbage"] and rng.random() < p["garbage"]:
            self.counts["garbage"] += 1
            out[:0] = rng.randbytes(rng.randrange(1, 17))
        return bytes(out)


# --------------------------------------------------------------------------------------------------
# The emulator


class Emulator:
    """The device end of a pseudo-terminal running the protocol and a plant. Not thread-safe: one
    thread runs `serve()`; others may only call `stop()`, `request_disconnect()` or read `path`."""

    def __init__(self, plant: MujocoPlant, *, rate_hz: float = 1000.0, link: str | None = None,
                 faults: FaultConfig | None = None, speed: float = 1.0,
                 protocol_version: int = P.PROTOCOL_VERSION, seed: int = 0, freeze_until_enable: bool = True,
                 device_name: str | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        if not rate_hz > 0 or rate_hz > 20000:
            raise ConfigError(f"firmware rate: {rate_hz} Hz is not in (0, 20000]")
        if not speed > 0:
            raise ConfigError(f"speed: must be > 0, got {speed}")
        self.plant = plant
        self.rate_hz = float(rate_hz)
        self.tick_us = round(1e6 / rate_hz)
        step_ticks = plant.dt * 1e6 / self.tick_us
        if abs(step_ticks - round(step_ticks)) > 1e-6 or round(step_ticks) < 1:
            raise ConfigError(f"firmware rate {rate_hz:g} Hz: the physics step of {plant.dt * 1e3:g} ms "
                              f"must be a whole number of ticks of {self.tick_us} µs")
        self._step_ticks = round(step_ticks)
        self.link = Path(link) if link is not None else None
        if self.link is not None:
            if not self.link.parent.is_dir():
                raise ConfigError(f"link: the folder {self.link.parent} does not exist")
            if self.link.exists() and not self.link.is_symlink():  # never replace a user's file
                raise ConfigError(f"link: {self.link} exists and is not a symlink; refusing to replace it")
        self.faults = faults or FaultConfig()
        self.injector = FaultInjector(self.faults, seed)
        self.speed = float(speed)
        self.version = protocol_version
        self.seed = seed
        self.freeze_until_enable = freeze_until_enable
        self.log = log or (lambda text: None)
        self.info = P.Info(0, protocol_version, round(rate_hz), (P.CommandKind.TORQUE, P.CommandKind.POSITION,
                           P.CommandKind.VELOCITY), device_name or f"robot_rl emulator: {plant.task}",
                           plant.joints, plant.fields)
        self.n = len(plant.joints)
        self.path: str | None = None
        self._master = self._slave = -1
        self._stop = threading.Event()
        self._disconnect_request: tuple[float, float] | None = None  # (when, for how long)
        self._ready = threading.Event()
        self._decoder = P.FrameDecoder()
        self._tx: deque[tuple[float, bytes]] = deque()
        self._seq = 0
        self._last_host_seq: int | None = None
        self.counters = {"seq_gaps": 0, "setpoints": 0, "setpoints_rejected": 0, "watchdog_trips": 0,
                         "limit_hits": 0, "unknown_type": 0, "bad_payload": 0, "bad_version": 0,
                         "tx_overflow": 0, "overruns": 0, "disconnects": 0}
        self.latencies_us: list[int] = []
        self.arrivals_us: list[int] = []
        self._k = 0
        self._rx_us = 0
        self._start = time.perf_counter()
        self._reset_device()

    # ---- device state
    def _reset_device(self) -> None:
        self.configured = self.enabled = self.safe = self.estopped = self.watchdog_tripped = False
        self.config: P.Config | None = None
        self.layout: P.StateLayout | None = None
        self._field_names: list[str] = []
        self.command = np.zeros(self.n)
        self.command_kind = P.CommandKind.TORQUE
        self.safe_mode = P.SafeMode.DAMPING
        self.hold = self.plant.positions()
        self.last_fault = P.Fault.NONE
        self._setpoint_seq = 0xFFFF
        self._last_setpoint_us = 0
        self._config_tick, self._period_ticks = 0, 1
        self._pending_latency: int | None = None
        self._limit_active = np.zeros(self.n, dtype=bool)
        self._limit_armed = np.zeros(self.n, dtype=bool)  # True: reported, not yet moved away
        self.frozen = self.freeze_until_enable

    @property
    def flags(self) -> P.Flags:
        f = P.Flags(0)
        for on, flag in ((self.configured, P.Flags.CONFIGURED), (self.enabled, P.Flags.ENABLED),
                         (self.safe, P.Flags.SAFE), (self.estopped, P.Flags.ESTOPPED),
                         (bool(self._limit_active.any()), P.Flags.LIMIT),
                         (self.watchdog_tripped, P.Flags.WATCHDOG)):
            if on:
                f |= flag
        return f

    # ---- pseudo-terminal
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline: bytes pass unchanged, no echo
        os.set_blocking(master, False)
        self._master, self._slave = master, slave  # keep the slave open: the host may come and go
        self.path = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            try:
                tmp.unlink(missing_ok=True)
                os.symlink(self.path, tmp)
                os.replace(tmp, self.link)  # atomic: a host sees the old link or the new one
            except OSError as err:
                self._close_pty()
                raise ConfigError(f"link: cannot make {self.link}: {err.strerror}") from None
        self._decoder.reset()
        self._tx.clear()
        self.log(f"serving {self.plant.task} at {self.path}" + (f" (link {self.link})" if self.link else "")
                 + f", firmware {self.rate_hz:g} Hz, protocol {self.version}")

    def _close_pty(self) -> None:
        if self.link is not None and self.link.is_symlink():
            self.link.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """For a thread that started `serve()`: wait until the port can be opened."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        self._stop.set()

    def request_disconnect(self, seconds: float = 1.0, after: float = 0.0) -> None:
        """Pull the cable `after` seconds from now: close the pty for `seconds` (safe to call from a
        signal handler)."""
        self._disconnect_request = (time.perf_counter() + after, seconds)

    # ---- main loop
    def serve(self) -> None:
        """Run until `stop()`: open the pty, then tick at the firmware rate, paced to real time × speed."""
        self._open_pty()
        self._ready.set()
        tick_wall = self.tick_us * 1e-6 / self.speed
        start = time.perf_counter()
        self._start = start
        k = 0
        reopen_at: float | None = None
        fault_disconnect = self.faults.disconnect_at
        try:
            while not self._stop.is_set():
                now = time.perf_counter()
                if fault_disconnect is not None and now - start >= fault_disconnect:
                    self._disconnect_request, fault_disconnect = (now, self.faults.disconnect_for), None
                if self._disconnect_request is not None and now >= self._disconnect_request[0]:
                    seconds, self._disconnect_request = self._disconnect_request[1], None
                    if self._master >= 0:
                        self.counters["disconnects"] += 1
                        self.log(f"disconnect: port closed for {seconds:g} s")
                        self._close_pty()
                    reopen_at = now + seconds
                if reopen_at is not None and now >= reopen_at:
                    reopen_at = None
                    self._open_pty()
                due = int((now - start) / tick_wall)
                if due > k:  # behind (this process was descheduled): catch up, ...
                    self.counters["overruns"] += 1
                    if due - k > MAX_CATCH_UP:  # ... but after a long stall, let device time jump
                        k = due - MAX_CATCH_UP
                    if self._master >= 0 and select.select([self._master], [], [], 0)[0]:
                        self._receive()  # what arrived meanwhile counts before the catch-up ticks
                while k <= due:
                    self._tick(k)
                    k += 1
                self.injector.expire(now)
                self._flush(now)
                timeout = max(0.0, start + k * tick_wall - time.perf_counter())
                if self._master >= 0:
                    if self._tx:
                        timeout = min(timeout, max(0.0, self._tx[0][0] - time.perf_counter()))
                    ready, _, _ = select.select([self._master], [], [], timeout)
                    if ready:
                        self._receive()
                else:
                    time.sleep(timeout)
        finally:
            self._close_pty()

    def _receive(self) -> None:
        """Read and handle what the host sent; `_rx_us` is the device time of the read."""
        self._rx_us = int((time.perf_counter() - self._start) * self.speed * 1e6)
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError as err:  # EIO: nobody has the port open (cannot happen while we hold the slave)
            if err.errno != errno.EIO:
                raise
            return
        for packet in self._decoder.feed(data):
            self._handle(packet)

    def now_us(self) -> int:
        """Device clock, µs: the start of the current (or last) tick."""
        return self._k * self.tick_us

    # ---- one firmware tick
    def _tick(self, k: int) -> None:
        """Tick k spans device time [k, k + 1) ticks: the state at its start is what STATE reports."""
        self._k = k
        t_us = k * self.tick_us
        if self.enabled and not self.safe and t_us - self._last_setpoint_us > self.config.watchdog_us:
            self.safe = self.watchdog_tripped = True
            self.hold = self.plant.positions()
            self.counters["watchdog_trips"] += 1
            self._fault(P.Fault.WATCHDOG, value=(t_us - self._last_setpoint_us) / 1000.0)
        if self.configured and (k - self._config_tick) % self._period_ticks == 0:
            values = self.plant.sample(self._field_names)
            self._send(P.State(self.flags, self._setpoint_seq, values), stamp=t_us)
        if self._pending_latency is not None:  # the firmware takes a setpoint at the tick after it came
            self.latencies_us.append((t_us - self._pending_latency) & 0xFFFFFFFF)
            self._pending_latency = None
        if k % self._step_ticks == self._step_ticks // 2:
            # The step [b, b + dt) from boundary b is integrated at its middle tick with the command of
            # that moment: a command takes effect at the *nearest* step boundary, so the plant's
            # discretisation shifts it by at most dt/2 either way instead of delaying it dt/2 on average.
            ctrl = self._control()
            if not self.frozen:
                self.plant.step(ctrl)

    def _control(self) -> np.ndarray:
        """Actuator controls for this tick, by mode; clipped; outward torque cut at a position limit."""
        plant = self.plant
        q, qd = plant.positions(), plant.velocities()
        if self.estopped or self.safe:
            if self.safe_mode == P.SafeMode.HOLD:
                ctrl = plant.kp * (self.hold - q) - plant.kd * qd
            else:
                ctrl = -plant.kd * qd
        elif not self.enabled:
            ctrl = np.zeros(self.n)
        elif self.command_kind == P.CommandKind.TORQUE:
            ctrl = self.command.copy()
        elif self.command_kind == P.CommandKind.POSITION:
            target = np.clip(self.command, plant.position_low, plant.position_high)
            ctrl = plant.kp * (target - q) - plant.kd * qd
        else:
            ctrl = plant.kd * (self.command - qd)
        ctrl = np.clip(ctrl, plant.command_low, plant.command_high)
        low, high = q <= plant.position_low, q >= plant.position_high
        at_limit = low | high
        ctrl[(low & (ctrl < 0)) | (high & (ctrl > 0))] = 0.0
        new = at_limit & ~self._limit_armed
        if new.any() and self.enabled:
            self.counters["limit_hits"] += int(new.sum())
            for j in np.flatnonzero(new):
                self._fault(P.Fault.JOINT_LIMIT, joint=int(j), value=float(q[j]))
        self._limit_active = at_limit
        # a joint resting on its limit reports once: re-armed only after it moves LIMIT_HYSTERESIS away
        away = (q > plant.position_low + LIMIT_HYSTERESIS) & (q < plant.position_high - LIMIT_HYSTERESIS)
        self._limit_armed = (self._limit_armed | at_limit) & ~away
        return ctrl

    # ---- messages
    def _handle(self, packet: P.Packet) -> None:
        if packet.type == P.MsgType.HELLO:  # a new host session numbers its packets afresh
            self._last_host_seq = None
        if self._last_host_seq is not None:
            gap = P.seq_gap(self._last_host_seq, packet.seq)
            if gap:
                self.counters["seq_gaps"] += gap
                self._fault(P.Fault.SETPOINT_GAP, value=float(gap))
        self._last_host_seq = packet.seq
        if packet.version != self.version:
            self.counters["bad_version"] += 1
            if packet.type == P.MsgType.HELLO:  # HELLO of any version is answered: the host can refuse us
                self._send(dataclasses.replace(self.info, req_seq=packet.seq))
            elif packet.type != P.MsgType.SETPOINT:
                self._nack(packet, P.Nack.VERSION)
            else:
                self.counters["setpoints_rejected"] += 1
            return
        try:
            msg = P.decode_message(packet)
        except P.ProtocolError as err:
            self.counters[err.kind] += 1
            if packet.type == P.MsgType.SETPOINT:
                self.counters["setpoints_rejected"] += 1
                self._fault(P.Fault.BAD_SETPOINT)
            else:
                self._nack(packet, P.Nack.UNKNOWN_TYPE if err.kind == "unknown_type" else P.Nack.BAD_PAYLOAD)
            return
        handler = getattr(self, f"_on_{type(msg).__name__.lower()}", None)
        if handler is None:
            self._nack(packet, P.Nack.UNSUPPORTED)
            return
        handler(packet, msg)

    def _on_hello(self, packet: P.Packet, msg: P.Hello) -> None:
        self._send(dataclasses.replace(self.info, req_seq=packet.seq))

    def _on_config(self, packet: P.Packet, msg: P.Config) -> None:
        if self.estopped:
            return self._nack(packet, P.Nack.ESTOPPED)
        if self.enabled:
            return self._nack(packet, P.Nack.BUSY)
        period_ticks, rest = divmod(msg.control_period_us, self.tick_us)
        if period_ticks < 1 or rest or msg.watchdog_us < 1:
            return self._nack(packet, P.Nack.BAD_PAYLOAD)
        if msg.field_mask >> len(self.info.fields):
            return self._nack(packet, P.Nack.UNSUPPORTED)
        self.config, self.configured = msg, True
        self.command_kind, self.safe_mode = msg.command_kind, msg.safe_mode
        self.layout = P.StateLayout(self.info, msg.field_mask)
        self._field_names = [name for i, (name, _) in enumerate(self.info.fields)
                             if self.layout.mask >> i & 1]
        self._period_ticks = period_ticks
        # the first STATE at the next physics-step boundary (the state changes only there)
        self._config_tick = (self._k // self._step_ticks + 1) * self._step_ticks
        self.latencies_us, self.arrivals_us = [], []
        self._ack(packet)

    def _on_enable(self, packet: P.Packet, msg: P.Enable) -> None:
        if self.estopped:
            return self._nack(packet, P.Nack.ESTOPPED)
        if not self.configured:
            return self._nack(packet, P.Nack.NOT_CONFIGURED)
        if not (self.enabled and not self.safe):  # enabling an enabled device is a no-op
            self.enabled, self.safe, self.watchdog_tripped = True, False, False
            self.frozen = False
            q = self.plant.positions()
            self.hold = q
            self.command = q.copy() if self.command_kind == P.CommandKind.POSITION else np.zeros(self.n)
            self._last_setpoint_us = max(self.now_us(), self._rx_us)
        self._ack(packet)

    def _on_disable(self, packet: P.Packet, msg: P.Disable) -> None:
        self.enabled = self.safe = False
        self.command = np.zeros(self.n)
        self._ack(packet)

    def _on_setpoint(self, packet: P.Packet, msg: P.Setpoint) -> None:
        self.counters["setpoints"] += 1
        if not self.enabled or self.safe or self.estopped:
            self.counters["setpoints_rejected"] += 1
            return
        values = msg.values.astype(np.float64)
        if msg.kind != self.command_kind or values.size != self.n or not np.isfinite(values).all():
            self.counters["setpoints_rejected"] += 1
            self._fault(P.Fault.BAD_SETPOINT, value=float(values.size))
            return  # not applied; the watchdog is not fed either
        self.command = values
        self._setpoint_seq = packet.seq
        self._last_setpoint_us = max(self.now_us(), self._rx_us)  # fed when it arrived
        arrival = (self._rx_us - msg.state_time_us) & 0xFFFFFFFF
        if msg.state_time_us and arrival < 0x80000000:  # it echoes a STATE we sent: measure it
            self._pending_latency = msg.state_time_us
            self.arrivals_us.append(arrival)

    def _on_estop(self, packet: P.Packet, msg: P.Estop) -> None:
        if not self.estopped:
            self.hold = self.plant.positions()
            self._fault(P.Fault.ESTOP)
        self.estopped, self.enabled = True, False
        self._ack(packet)

    def _on_reset(self, packet: P.Packet, msg: P.Reset) -> None:
        frozen = self.frozen
        self._reset_device()
        self.frozen = frozen
        self._ack(packet)

    def _on_getstatus(self, packet: P.Packet, msg: P.GetStatus) -> None:
        lat = np.array(self.latencies_us, dtype=np.float64)
        dec = self._decoder.counters
        counters = {**self.counters, "frames_ok": dec["frames_ok"], "bad_crc": dec["bad_crc"],
                    "bad_framing": dec["bad_cobs"] + dec["bad_length"], "latency_count": lat.size}
        for name, values in (("latency", lat), ("arrival", np.array(self.arrivals_us, dtype=np.float64))):
            if values.size:
                counters.update({f"{name}_p50_us": int(np.percentile(values, 50)),
                                 f"{name}_p99_us": int(np.percentile(values, 99)),
                                 f"{name}_max_us": int(values.max())})
        self._send(P.Status(packet.seq, self.flags, self.last_fault, counters))

    def _on_inject(self, packet: P.Packet, msg: P.Inject) -> None:
        self._ack(packet)  # acknowledged before it acts: a MUTE or DISCONNECT would swallow the ACK
        self._flush(math.inf)
        until = None if msg.duration_ms == 0 else time.perf_counter() + msg.duration_ms / 1000.0
        kind = msg.kind
        if kind == P.InjectKind.CLEAR:
            self.injector.clear()
        elif kind == P.InjectKind.DISCONNECT:  # a moment later, so the ACK gets out first
            self.request_disconnect(msg.value, after=0.02)
        elif kind == P.InjectKind.RESET_PLANT:
            self.plant.reset(int(msg.value))
            self.frozen = True
            self.hold = self.plant.positions()
        else:
            self.injector.set(kind.name.lower(), msg.value, until)

    # ---- sending
    def _ack(self, packet: P.Packet) -> None:
        self._send(P.Ack(packet.type, packet.seq))

    def _nack(self, packet: P.Packet, reason: P.Nack) -> None:
        self._send(P.NackMsg(packet.type, packet.seq, reason))

    def _fault(self, code: P.Fault, joint: int = P.NO_JOINT, value: float = 0.0) -> None:
        self.last_fault = code
        self._send(P.FaultReport(code, joint, value))

    def _send(self, msg: P.Message, stamp: int | None = None) -> None:
        if self._master < 0:
            return
        frame = P.encode_frame(msg.TYPE, self._seq, self.now_us() if stamp is None else stamp, msg.pack(),
                               self.version)
        self._seq = (self._seq + 1) & 0xFFFF
        data = self.injector.apply(frame)
        if data:
            release = time.perf_counter() + self.injector.delay if self.injector.delay else 0.0
            self._tx.append((release, data))

    def _flush(self, now: float) -> None:
        while self._tx and self._tx[0][0] <= now and self._master >= 0:
            release, data = self._tx[0]
            try:
                sent = os.write(self._master, data)
            except BlockingIOError:  # nobody reads the port: drop, as a UART would
                self.counters["tx_overflow"] += 1
                self._tx.popleft()
                continue
            if sent < len(data):
                self._tx[0] = (release, data[sent:])
                return
            self._tx.popleft()


def run_emulator(task: str, *, link: str | None = None, rate_hz: float = 1000.0,
                 faults: FaultConfig | None = None, speed: float = 1.0, seed: int = 0,
                 protocol_version: int = P.PROTOCOL_VERSION, physics_dt: float | None = None,
                 log: Callable[[str], None] = print) -> int:
    """`robot-rl emulate`: serve in this thread until SIGINT/SIGTERM; SIGUSR1 pulls the cable for 1 s."""
    import signal

    emulator = Emulator(MujocoPlant(task, seed, physics_dt), rate_hz=rate_hz, link=link, faults=faults,
                        speed=speed, protocol_version=protocol_version, seed=seed, log=log)
    previous = {}

    def stop(signum: int, frame: Any) -> None:
        emulator.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, stop)
    previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, lambda s, f: emulator.request_disconnect(1.0))
    try:
        emulator.serve()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log("stopped")
    return 0
