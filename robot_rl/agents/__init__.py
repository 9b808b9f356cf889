"""The learning agents, one algorithm per file: ppo, trpo, reinforce, vpg (and dqn).

Not imported by `import robot_rl`: agents import torch. The launch schema's `ALGORITHMS` registry
names the module and classes of each.
"""
