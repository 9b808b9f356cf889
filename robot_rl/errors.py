"""The exceptions a user sees. The CLI turns any `RobotRLError` into one line and exit code 2."""


class RobotRLError(Exception):
    """Base of every error caused by the user's input (a file, a flag, a bundle), not by a bug."""


class ConfigError(RobotRLError, ValueError):
    """A configuration value or key is wrong; the message names the key and the valid choices."""
