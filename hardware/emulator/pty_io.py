"""The emulator's I/O: a pseudo-terminal (and the symlink a host opens), the outgoing byte queue with
its injected faults, and the loop that paces firmware ticks to real time.

The link rules: an existing path at `link` is never taken over unless `force` (and a file that is not
a symlink never is); the emulator deletes or re-points only the link it made, and only while it still
points at the pty it made it for (a second emulator that took the link over with `force` keeps it).
"""

from __future__ import annotations

import errno
import math
import os
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robot_rl.errors import ConfigError
from robot_rl.hardware import protocol as P
from robot_rl.hardware.emulator.device import Device
from robot_rl.hardware.emulator.faults import FaultConfig, FaultInjector
from robot_rl.hardware.emulator.plant import MujocoPlant

MAX_CATCH_UP = 1000
"""Ticks the emulator runs back to back to catch up after its process was descheduled; beyond
that, device time jumps (counted in `overruns`) and the physics misses the rest."""


class PtyLink:
    """The symlink at `path` that names our pty, made and removed by the rules above."""

    def __init__(self, path: str, force: bool = False) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ConfigError(f"link: the folder {self.path.parent} does not exist")
        if os.path.lexists(self.path):
            if not self.path.is_symlink():  # never replace a user's file
                raise ConfigError(f"link: {self.path} exists and is not a symlink; refusing to replace it")
            if not force:
                raise ConfigError(f"link: {self.path} already exists (-> {os.readlink(self.path)}), and it "
                                  f"is not this emulator's: another emulator may be serving it. Stop that "
                                  f"one, remove the link, or pass --force to take it over")
        self._target: str | None = None  # where our link points; None: we hold no link
        self._first = True

    def _points_to(self, target: str) -> bool:
        try:
            return os.readlink(self.path) == target
        except OSError:
            return False

    def point_to(self, target: str) -> bool:
        """Make (or re-point) the link to `target`; False if someone else's link is there now."""
        if not self._first and os.path.lexists(self.path) and not (
                self._target is not None and self._points_to(self._target)):
            return False  # taken over while we were disconnected: leave it
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, self.path)  # atomic: a host sees the old link or the new one
        except OSError as err:
            raise ConfigError(f"link: cannot make {self.path}: {err.strerror}") from None
        self._target, self._first = target, False
        return True

    def remove(self) -> None:
        """Delete the link if it is still ours (points where we made it)."""
        if self._target is not None and self._points_to(self._target):
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


class Emulator:
    """The device end of a pseudo-terminal running the protocol (`Device`) and a plant. Not
    thread-safe: one thread runs `serve()`; others may only call `stop()`, `request_disconnect()` or
    read `path`."""

    def __init__(self, plant: MujocoPlant, *, rate_hz: float = 1000.0, link: str | None = None,
                 force: bool = False, faults: FaultConfig | None = None, speed: float = 1.0,
                 protocol_version: int = P.PROTOCOL_VERSION, seed: int = 0, freeze_until_enable: bool = True,
                 device_name: str | None = None, log: Callable[[str], None] | None = None) -> None:
        if not (isinstance(rate_hz, (int, float)) and 1 <= rate_hz <= 20000 and rate_hz == int(rate_hz)):
            raise ConfigError(f"firmware rate: {rate_hz} Hz is not a whole number in [1, 20000] (INFO "
                              f"carries it as a u16)")
        tick = 1e6 / rate_hz
        if 10 ** 6 % int(rate_hz):
            raise ConfigError(f"firmware rate {rate_hz:g} Hz: a tick of 10^6 / rate = {tick:g} µs is not a "
                              f"whole number of microseconds; choose a rate that divides 10^6 (e.g. 1000, "
                              f"500, 2000, 4000)")
        if not (isinstance(speed, (int, float)) and 0 < speed < math.inf):
            raise ConfigError(f"speed: must be a finite number > 0, got {speed}")
        self.plant = plant
        self.rate_hz = float(rate_hz)
        self.tick_us = round(tick)
        step_ticks = plant.dt * 1e6 / self.tick_us
        if abs(step_ticks - round(step_ticks)) > 1e-6 or round(step_ticks) < 1:
            raise ConfigError(f"firmware rate {rate_hz:g} Hz: the physics step of {plant.dt * 1e3:g} ms "
                              f"must be a whole number of ticks of {self.tick_us} µs")
        self.link = PtyLink(link, force) if link is not None else None
        self.faults = faults or FaultConfig()
        self.injector = FaultInjector(self.faults, seed)
        self.speed = float(speed)
        self.version = protocol_version
        self.seed = seed
        self.log = log or (lambda text: None)
        self.info = P.Info(0, protocol_version, round(rate_hz), plant.command_kinds,
                           device_name or f"robot_rl emulator: {plant.task}",
                           plant.joints, plant.fields)
        self.path: str | None = None
        self._master = self._slave = -1
        self._stop = threading.Event()
        self._disconnect_request: tuple[float, float] | None = None  # (when, for how long)
        self._ready = threading.Event()
        self._decoder = P.FrameDecoder()
        self._tx: deque[tuple[float, bytes]] = deque()
        self._seq = 0
        self._start = time.perf_counter()
        self.device = Device(plant, self.info, tick_us=self.tick_us, step_ticks=round(step_ticks),
                             send=self._send, inject=self._inject, decoder_counters=self._decoder.counters,
                             freeze_until_enable=freeze_until_enable, log=self.log)
        self.counters = self.device.counters

    # ---- pseudo-terminal
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline: bytes pass unchanged, no echo
        os.set_blocking(master, False)
        self._master, self._slave = master, slave  # keep the slave open: the host may come and go
        self.path = os.ttyname(slave)
        linked = ""
        if self.link is not None:
            try:
                ours = self.link.point_to(self.path)
            except ConfigError:
                self._close_pty()
                raise
            linked = f" (link {self.link.path}" + (")" if ours else " taken over by another: left alone)")
        self._decoder.reset()
        self._tx.clear()
        self.log(f"serving {self.plant.task} at {self.path}{linked}, firmware {self.rate_hz:g} Hz, "
                 f"protocol {self.version}")

    def _close_pty(self) -> None:
        if self.link is not None:
            self.link.remove()
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
                    self.device.tick(k)
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
        """Read and handle what the host sent, stamped with the device time of the read."""
        rx_us = int((time.perf_counter() - self._start) * self.speed * 1e6)
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError as err:  # EIO: nobody has the port open (cannot happen while we hold the slave)
            if err.errno != errno.EIO:
                raise
            return
        for packet in self._decoder.feed(data):
            self.device.handle(packet, rx_us)

    def now_us(self) -> int:
        """Device clock, µs: the start of the current (or last) tick."""
        return self.device.now_us()

    # ---- the outgoing stream
    def _inject(self, msg: P.Inject) -> None:
        """A checked, acknowledged INJECT that acts on the byte stream."""
        self._flush(math.inf)  # the ACK leaves before a MUTE or DELAY holds it back
        kind = msg.kind
        if kind == P.InjectKind.CLEAR:
            self.injector.clear()
        elif kind == P.InjectKind.DISCONNECT:  # a moment later, so the ACK gets out first
            self.request_disconnect(msg.value, after=0.02)
        else:
            until = None if msg.duration_ms == 0 else time.perf_counter() + msg.duration_ms / 1000.0
            self.injector.set(kind.name.lower(), msg.value, until)

    def _send(self, msg: P.Message, stamp: int) -> None:
        if self._master < 0:
            return
        frame = P.encode_frame(msg.TYPE, self._seq, stamp, msg.pack(), self.version)
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


def run_emulator(task: str, *, link: str | None = None, force: bool = False, rate_hz: float = 1000.0,
                 faults: FaultConfig | None = None, speed: float = 1.0, seed: int = 0,
                 protocol_version: int = P.PROTOCOL_VERSION, physics_dt: float | None = None,
                 log: Callable[[str], None] = print) -> int:
    """`robot-rl emulate`: serve in this thread until SIGINT/SIGTERM; SIGUSR1 pulls the cable for 1 s."""
    import signal

    plant = MujocoPlant(task, seed, physics_dt)
    emulator = Emulator(plant, rate_hz=rate_hz, link=link, force=force, faults=faults, speed=speed,
                        protocol_version=protocol_version, seed=seed, log=log)
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
