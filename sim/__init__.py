"""Tasks and simulators. Knows nothing of algorithms, policies or transports.

Nothing heavy is imported here: each task family lives in its own module and is imported on use.
"""
