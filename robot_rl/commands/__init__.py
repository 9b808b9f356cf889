"""Sub-commands of `robot-rl`; see `robot_rl.cli`."""


def seed_arg(text: str) -> int:
    """argparse type for `--seed`: a whole number >= 0 (Gymnasium and NumPy refuse negative seeds, with a
    traceback deep in the environment; here it is a usage error naming the flag)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; a seed is a whole number >= 0")
    return value
