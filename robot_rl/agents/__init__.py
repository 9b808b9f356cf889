"""The learning agents, one algorithm per file: ppo, trpo, reinforce, vpg and dqn (DQN's networks,
TD learning and exploration in their own files); every algorithm's config in `configs` (torch-free).

Not imported by `import robot_rl`: agents import torch. The launch schema's `ALGORITHMS` registry
names the module and classes of each.
"""
