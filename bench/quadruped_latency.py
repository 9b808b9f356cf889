"""The quadruped with actuation latency: velocity tracking and falls of quadruped policies when each command
reaches the motors late (`randomize.actuation_delay` pinned to one value), each policy on the same episodes,
so that a policy trained with random latency is measured beside its peer trained without
(`zoo:quadruped-walk_ppo`) in the same run.

Why: a robot's command arrives after its state was measured (the driver's cycle, a bus, a ROS 2 hop). Over
ROS 2 a deploy that ticks late in the driver's cycle delivers every command one whole control period
(20 ms) late; the zoo policy falls under that (hardware/ros2_robot.py keeps the deploy in step with the
driver for that reason). A policy that tolerates a period of latency does not depend on that.

Conditions (nominal physics otherwise; deterministic policy; episode i seeded seed + i): the previous
command held for 0, 10 and 20 ms (0, 5 and 10 physics steps of 2 ms; 20 ms is one control period) of each
period. Each on "forward" commands (forward only, U[-1, 1] m/s: bench/quadruped_tracking.py's measure) and
on the task's own commands. Tracking error: per episode the mean over its steps of |command_xy - v_xy| (m/s,
base frame), averaged over episodes; a fall: an episode ended by a termination. Prints one JSON line.

    python bench/quadruped_latency.py /work/runs/quad_delay zoo:quadruped-walk_ppo --episodes 10
"""

from __future__ import annotations

from quadruped_conditions import arguments, run

DELAYS = (0.0, 0.01, 0.02)
"""Seconds the previous command stays applied at the start of each control period."""


def main() -> None:
    args = arguments(__doc__)
    from robot_rl.sim.randomization import RandomizationConfig

    named = {f"delay_{delay * 1000:g}ms": RandomizationConfig(actuation_delay=(delay, delay)) if delay
             else None for delay in DELAYS}
    run("quadruped_latency", named, args, delays_s=list(DELAYS))


if __name__ == "__main__":
    main()
