"""Tasks declared as configuration (a model, control, observation/reward/termination terms), not code.

`terms` is the library of vectorized terms; `config` validates a launch file's `task:` mapping;
`builder` turns it into an `EngineTask` on the batched engine.
"""
