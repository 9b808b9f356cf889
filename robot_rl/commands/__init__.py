"""Sub-commands of `robot-rl`; see `robot_rl.cli`."""
