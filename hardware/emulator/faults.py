"""Faults the emulator applies to the frames it sends: drop, corrupt, delay, garbage, truncate, mute,
disconnect. From the command line (`--fault KIND=VALUE`, `parse_faults`) or from the host (INJECT,
checked by `inject_error` before it acts). A value that is not a finite number in its range is a usage
error (or a NACK), never a device that silently stops answering.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

from robot_rl.errors import ConfigError
from robot_rl.hardware import protocol as P

PROBABILITIES = ("drop", "corrupt", "garbage", "truncate")
FAULT_FLAGS = ("drop", "corrupt", "delay", "garbage", "truncate", "mute", "disconnect")
MAX_DELAY = 10.0
"""Seconds: the longest output delay (a longer one is a mute, and says so)."""
MAX_DISCONNECT = 3600.0
"""Seconds: the longest a disconnect may last."""
_MUTE_WORDS = {"": True, "1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


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
        for key in PROBABILITIES:
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):  # NaN fails both
                raise ConfigError(f"fault {key}: a probability in [0, 1], got {value}")
        if not (isinstance(self.delay, (int, float)) and 0.0 <= self.delay <= MAX_DELAY):
            raise ConfigError(f"fault delay: seconds in [0, {MAX_DELAY:g}], got {self.delay}")
        if self.disconnect_at is not None and not 0.0 <= self.disconnect_at < math.inf:
            raise ConfigError(f"fault disconnect: AT must be a finite number of seconds >= 0, "
                              f"got {self.disconnect_at}")
        if not 0.0 <= self.disconnect_for <= MAX_DISCONNECT:
            raise ConfigError(f"fault disconnect: FOR must be seconds in [0, {MAX_DISCONNECT:g}], "
                              f"got {self.disconnect_for}")
        if not isinstance(self.mute, bool):
            raise ConfigError(f"fault mute: true or false, got {self.mute!r}")


def parse_faults(items: list[str]) -> FaultConfig:
    """`--fault KIND=VALUE` items -> FaultConfig; `disconnect=AT[:FOR]` (seconds); `mute` alone means
    on, `mute=0|1|on|off|true|false`. Anything else (NaN, inf, `mute=maybe`) is a ConfigError."""
    config: dict[str, Any] = {}
    for item in items:
        kind, _, value = item.partition("=")
        kind, value = kind.strip(), value.strip()
        if kind not in FAULT_FLAGS:
            raise ConfigError(f"--fault {item!r}: unknown fault; choose one of: {', '.join(FAULT_FLAGS)}")
        if kind == "mute":
            if value.lower() not in _MUTE_WORDS:
                raise ConfigError(f"--fault {item!r}: mute takes on/off (1/0, true/false), or nothing")
            config["mute"] = _MUTE_WORDS[value.lower()]
        elif kind == "disconnect":
            at, _, dur = value.partition(":")
            config["disconnect_at"] = _finite(item, at, "disconnect=AT[:FOR] seconds")
            if dur:
                config["disconnect_for"] = _finite(item, dur, "disconnect=AT[:FOR] seconds")
        else:
            config[kind] = _finite(item, value, f"{kind}=NUMBER")
    return FaultConfig(**config)


def _finite(item: str, text: str, form: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--fault {item!r}: expected {form}") from None
    if not math.isfinite(value):
        raise ConfigError(f"--fault {item!r}: {text} is not a finite number ({form})")
    return value


def inject_error(msg: P.Inject) -> str | None:
    """Why the emulator refuses this INJECT (NACK BAD_PAYLOAD), or None. Checked before it acts, so a
    host's NaN never reaches the plant or the fault injector."""
    kind, value = msg.kind, msg.value
    if kind == P.InjectKind.CLEAR:
        return None
    if not math.isfinite(value):
        return f"{kind.name}: value {value} is not finite"
    if kind.name.lower() in PROBABILITIES and not 0.0 <= value <= 1.0:
        return f"{kind.name}: probability {value} is not in [0, 1]"
    if kind == P.InjectKind.DELAY and not 0.0 <= value <= MAX_DELAY:
        return f"DELAY: {value} s is not in [0, {MAX_DELAY:g}]"
    if kind == P.InjectKind.DISCONNECT and not 0.0 <= value <= MAX_DISCONNECT:
        return f"DISCONNECT: {value} s is not in [0, {MAX_DISCONNECT:g}]"
    if kind == P.InjectKind.MUTE and value not in (0.0, 1.0):
        return f"MUTE: value {value} is neither 0 nor 1"
    if kind == P.InjectKind.RESET_PLANT and not (value == int(value) and 0 <= value < 2 ** 32):
        return f"RESET_PLANT: seed {value} is not a whole number in [0, 2^32)"
    return None


class FaultInjector:
    """Turns one frame into what goes on the wire: nothing, a damaged copy, extra garbage, later."""

    def __init__(self, config: FaultConfig, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.probability = {k: getattr(config, k) for k in PROBABILITIES}
        self.delay = config.delay
        self.mute = config.mute
        self.until: dict[str, float] = {}
        self.counts = {"dropped": 0, "corrupted": 0, "garbage": 0, "truncated": 0}

    def set(self, kind: str, value: float, until: float | None) -> None:
        """Start fault `kind` ("drop", ..., "delay", "mute") at `value` until `until` (perf_counter
        seconds; None: until cleared). `value` is checked by `inject_error` first."""
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
