"""Scale-out on Ray (the `distributed` extra: `pip install -e ".[distributed]"`).

Only modules of this package import `ray`, and only inside functions: importing robot_rl, its CLI or
this package never loads ray. `grid` expands a sweep into trials (no ray), `cluster` connects to a Ray
cluster, `sweep` runs the trials as Ray Tune trials and `report` summarises their run directories;
`rollout` collects an on-policy run's rollouts on Ray actors (`rollout_workers: N`).
"""
