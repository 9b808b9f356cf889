"""The firmware emulator: a microcontroller on the far side of a pseudo-terminal, with a MuJoCo plant.

It opens a pseudo-terminal (`os.openpty()`), keeps the device end, and offers the other end as the
serial port a host opens (its path is printed, or symlinked at `link`). It speaks the protocol of
`robot_rl.hardware.protocol` exactly as firmware would, and runs one world of the task's MuJoCo engine
as the plant (any task on the engine, through its declared model, data and spec), with a firmware
loop at `rate_hz` (1 kHz by default):

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

- Link (`link`): never replaces a path that exists unless `force` (never a file that is not a symlink);
  removes or re-points only the link it made, while it still points at its pty.

Modules: `plant` (MuJoCo, imported by `MujocoPlant` only), `faults` (fault config, `--fault` parsing,
INJECT checks, the injector), `device` (the protocol's device-side state machine, no I/O) and `pty_io`
(the pseudo-terminal, the link, the outgoing queue and the tick loop).
"""

from __future__ import annotations

from robot_rl.hardware.emulator.device import LIMIT_HYSTERESIS, Device
from robot_rl.hardware.emulator.faults import (
           FAULT_FLAGS,
           FaultConfig,
           FaultInjector,
           inject_error,
           parse_faults,
)
from robot_rl.hardware.emulator.plant import PD_FREQUENCY_HZ, MujocoPlant
from robot_rl.hardware.emulator.pty_io import MAX_CATCH_UP, Emulator, PtyLink, run_emulator

__all__ = ["FAULT_FLAGS", "LIMIT_HYSTERESIS", "MAX_CATCH_UP", "PD_FREQUENCY_HZ", "Device", "Emulator",
           "FaultConfig", "FaultInjector", "MujocoPlant", "PtyLink", "inject_error", "parse_faults",
           "run_emulator"]
