"""ROS 2 round trip: JointState published -> command received, through the policy node and a bare echo.

Two targets, each its own process on this host (loopback, a domain of its own), measured in the same
run at 50, 200 and 500 Hz, interleaved rate by rate:

  policy   robot_rl_policy (`robot_rl.hardware.ros2_policy_node`) with the zoo's Hopper-v5 PPO bundle:
           JointState -> Ros2Robot -> ControlLoop tick (policy, safety filter on) -> Float64MultiArray,
           `trigger:=state`, `period` set to the rate (so each state is due)
  echo     the bare limit: a trivial rclpy node on the same topics with the same QoS (JointState in,
           best effort, depth 1; Float64MultiArray out, reliable, depth 1) and the same executor,
           publishing the received positions back

This process publishes JointStates at the rate from its main thread (absolute deadlines) and takes
the commands in an executor thread; latency = arrival time - publish time (one monotonic clock).
Each state carries its index in its first position (rootx, which the Hopper policy does not observe),
so the echo's answers are matched exactly. The policy node answers a state with at most one command,
never exactly zero unless it is the safe command (counted apart: after a gap in the stream its
watchdog sends it, and after the last state of a run); so its lost states are the states sent minus
its non-zero commands. Its answers are paired in order (first in, first out) when none was lost and
that pairing agrees with the by-time one (each answer with the latest state sent before it, what the
node answers) for 99 % of them, else by time (a late answer then counts as the next state's).
`unanswered_by_time` (the states no answer follows before the next state is sent) bounds the losses
from above: a state lost and another answered twice (e.g. late by its watchdog) hide from the count.
Warm-up states until the first answer are not counted.

Prints one JSON line: per target and rate, sent, received, lost, p50/p99/max latency (ms) and the
achieved rates; and the goals: the policy's p50 over the echo's (goal <= 1.20) and its losses at
500 Hz (goal 0). The load average is recorded: on a shared machine the figures are noisy.

    python bench/ros2_latency.py [--seconds 4] [--rates 50 200 500] [--target-cpus 1]
"""

from __future__ import annotations

import argparse
import array
import json
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np

BUNDLE = "zoo:Hopper-v5_ppo"
NAMES = ["rootx", "rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint"]
POSE = np.array([0.0, 1.25, 0.0, 0.0, 0.0, 0.0])  # standing


def echo_main(namespace: str, executor_kind: str, priority: int = 0) -> int:
    """The bare echo node: JointState in, its positions out as Float64MultiArray."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from robot_rl.hardware.ros2_policy_node import make_executor, set_realtime_priority
    from robot_rl.hardware.ros2_robot import command_qos, state_qos

    context = rclpy.Context()
    rclpy.init(args=["echo", "--ros-args", "-r", f"__ns:=/{namespace}"], context=context,
               signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("robot_rl_echo", context=context)
    pub = node.create_publisher(Float64MultiArray, "commands", command_qos(None))
    out = Float64MultiArray()

    def echo(msg: JointState) -> None:
        out.data = msg.position
        pub.publish(out)

    node.create_subscription(JointState, "joint_states", echo, state_qos(None))
    set_realtime_priority(priority, node.get_logger())  # as the policy node does, after its node
    executor = make_executor(executor_kind, context)
    executor.add_node(node)
    stop: list[int] = []
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    while not stop:
        executor.spin_once(timeout_sec=0.1)
    node.destroy_node()
    context.try_shutdown()
    return 0


class Prober:
    """Publishes JointStates on `/NS/joint_states` and records the commands on `/NS/commands`."""

    def __init__(self, context, namespace: str) -> None:
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        from robot_rl.hardware.ros2_robot import state_qos

        self.node = rclpy.create_node(f"prober_{namespace}", context=context)
        self.pub = self.node.create_publisher(JointState, f"/{namespace}/joint_states", state_qos(None))
        # our side keeps what arrives (depth 100): a loss is then the target's, not ours
        self.node.create_subscription(Float64MultiArray, f"/{namespace}/commands", self._got,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        from diagnostic_msgs.msg import DiagnosticArray

        self.diagnostics: dict[str, str] = {}
        self.node.create_subscription(DiagnosticArray, f"/{namespace}/diagnostics", self._diag, 10)
        self.msg = JointState(name=list(NAMES))
        self.received: list[tuple[float, np.ndarray]] = []
        self.lock = threading.Lock()

    def _got(self, msg) -> None:
        t = time.perf_counter()
        with self.lock:
            self.received.append((t, np.array(msg.data)))

    def _diag(self, msg) -> None:
        for status in msg.status:  # the latest value of each key (an immediate report has no timing)
            self.diagnostics.update({kv.key: kv.value for kv in status.values})

    def publish(self, index: int, rng: np.random.Generator) -> float:
        q = POSE + 0.01 * rng.standard_normal(6)
        q[0] = float(index)
        msg = self.msg
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.position = array.array("d", q.tobytes())
        msg.velocity = array.array("d", (0.05 * rng.standard_normal(6)).tobytes())
        t = time.perf_counter()
        self.pub.publish(msg)
        return t

    def run(self, rate: float, seconds: float, warmup: float = 30.0) -> dict:
        rng = np.random.default_rng(0)
        period = 1.0 / rate
        deadline = time.perf_counter() + warmup
        while not self.received:  # until the target answers (discovery, activation)
            self.publish(-1, rng)
            time.sleep(0.02)
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no answer on {self.pub.topic_name} within {warmup:g} s")
        time.sleep(0.2)
        with self.lock:
            self.received.clear()
        n = round(seconds * rate)
        sent = np.empty(n)
        t0 = time.perf_counter() + 0.01
        for k in range(n):
            delay = t0 + k * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent[k] = self.publish(k, rng)
        time.sleep(0.2)
        with self.lock:
            got = list(self.received)
        result = analyse(sent, got, rate)
        gaps = np.diff(sent) * 1e3
        result["publish_gap_p99_ms"] = float(np.percentile(gaps, 99))
        result["publish_gap_max_ms"] = float(gaps.max())
        # states this bench sent less than a quarter period after the previous one (it woke late and
        # caught up): with depth 1, a target still busy with the first then only sees the second
        result["publish_bursts"] = int((gaps < 0.25 * period * 1e3).sum())
        if self.diagnostics:  # the node's own count: states it accepted and ticks it ran (warm-up included)
            d = self.diagnostics
            keys = ("states_received", "states_lost", "steps", "safety_stale", "latency_p50_ms",
                    "latency_p99_ms")
            result["node"] = {k: d.get(k) for k in keys}
        return result


def analyse(sent: np.ndarray, got: list[tuple[float, np.ndarray]], rate: float) -> dict:
    """Match answers to states (exact by index for an echo, in order or by time otherwise)."""
    times = np.array([t for t, _ in got])
    data = [d for _, d in got]
    echo = bool(data) and all(d.size == len(NAMES) for d in data)
    safe = np.array([not echo and not d.any() for d in data], dtype=bool)
    answers = times[~safe]
    if echo:
        index = np.array([int(d[0]) for d in data])
        keep = (index >= 0) & (index < len(sent))
        latency = answers[keep] - sent[index[keep]]
        matched, method = len(np.unique(index[keep])), "exact"
        unanswered = len(sent) - matched
    else:  # every non-zero command answers one state, so the count is exact; the pairing: in order
        # when the counts agree and it agrees with pairing each answer with the newest state sent
        # before it (what the node answers) nearly everywhere; else that by-time pairing, which is exact
        # for every answer faster than a period (a state lost and a late one answered twice would shift
        # the whole in-order pairing by one period)
        before = np.searchsorted(sent, answers, side="right") - 1
        ok = before >= 0
        latency = answers[ok] - sent[before[ok]]
        matched, method = min(len(answers), len(sent)), "latest before"
        unanswered = len(sent) - len(np.unique(before[ok]))
        if len(answers) == len(sent) and np.mean(before == np.arange(len(sent))) >= 0.99:
            latency, method = answers - sent, "in order"
    span_sent = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    span_got = answers[-1] - answers[0] if len(answers) > 1 else 0.0
    p50, p99 = (np.percentile(latency, [50, 99]) * 1e3).tolist() if len(latency) else (None, None)
    return {"rate_hz": rate, "sent": len(sent), "received": len(answers), "lost": len(sent) - matched,
            "unanswered_by_time": unanswered, "safe_commands": int(safe.sum()), "matching": method,
            "p50_ms": p50, "p99_ms": p99, "max_ms": float(latency.max() * 1e3) if len(latency) else None,
            "publish_rate_hz": (len(sent) - 1) / span_sent if span_sent else None,
            "answer_rate_hz": (len(answers) - 1) / span_got if span_got else None}


def start(kind: str, namespace: str, rate: float, env: dict[str, str], executor: str, priority: int,
          cpus: list[int] | None = None, node_params: list[str] | None = None) -> subprocess.Popen:
    if kind == "echo":
        cmd = [sys.executable, __file__, "--echo", namespace, "--executor", executor,
               "--realtime-priority", str(priority)]
    else:
        cmd = [sys.executable, "-m", "robot_rl.hardware.ros2_policy_node", BUNDLE, "--ros-args",
               "-r", f"__ns:=/{namespace}", "-p", f"period:={1.0 / rate!r}", "-p", "trigger:=state",
               "-p", f"executor:={executor}", "-p", f"realtime_priority:={priority}"]
        for value in node_params or []:
            cmd += ["-p", value]
    if cpus:  # every thread of the target on these cores, from its start
        cmd = ["taskset", "-c", ",".join(map(str, cpus)), *cmd]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(p: subprocess.Popen) -> None:
    p.send_signal(2)
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="measured seconds per target and rate")
    ap.add_argument("--rates", type=float, nargs="+", default=[50.0, 200.0, 500.0])
    ap.add_argument("--domain", type=int, default=None, help="ROS_DOMAIN_ID (default: 61 + pid %% 40)")
    ap.add_argument("--executor", default="auto", choices=("auto", "events", "single"),
                    help="rclpy executor of both targets (default: auto, the node's default)")
    ap.add_argument("--realtime-priority", type=int, default=0,
                    help="SCHED_FIFO priority of both targets' executor threads (0: off, the default)")
    ap.add_argument("--target-cpus", type=int, nargs="+", default=None, metavar="CPU",
                    help="run both targets on these cores and this process (the driver's stand-in) on the "
                         "others, as on a robot computer with cores kept for control (default: no pinning)")
    ap.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                    help="one more parameter for the policy node (repeatable), e.g. command_deadline:=0.0")
    ap.add_argument("--echo", metavar="NS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.echo:
        sys.exit(echo_main(args.echo, args.executor, args.realtime_priority))

    if args.target_cpus:
        others = set(range(os.cpu_count() or 1)) - set(args.target_cpus)
        if not others:
            ap.error("--target-cpus leaves no core for the publisher")
        os.sched_setaffinity(0, others)  # before rclpy starts its threads: they inherit it
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    domain = args.domain if args.domain is not None else 61 + os.getpid() % 40
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")  # loopback only
    env = dict(os.environ)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    executor = SingleThreadedExecutor(context=context)
    spinning = threading.Thread(target=lambda: _spin(executor, context), daemon=True)
    load_before = os.getloadavg()
    results: dict[str, dict[str, dict]] = {"echo": {}, "policy": {}}
    started = []
    try:
        spinning.start()
        for rate in args.rates:
            for kind in ("echo", "policy"):
                ns = f"{kind}{int(rate)}"
                proc = start(kind, ns, rate, env, args.executor, args.realtime_priority, args.target_cpus,
                             args.node_param)
                started.append(proc)
                prober = Prober(context, ns)
                executor.add_node(prober.node)
                try:
                    results[kind][f"{rate:g}"] = prober.run(rate, args.seconds)
                finally:
                    executor.remove_node(prober.node)
                    prober.node.destroy_node()
                    stop(proc)
    finally:
        for p in started:
            if p.poll() is None:
                stop(p)
        executor.shutdown(timeout_sec=1.0)
        context.try_shutdown()
    top = f"{max(args.rates):g}"
    e, p = results["echo"].get(top, {}), results["policy"].get(top, {})
    ratios = {r: results["policy"][r]["p50_ms"] / results["echo"][r]["p50_ms"] for r in results["echo"]
              if results["policy"][r]["p50_ms"] and results["echo"][r]["p50_ms"]}
    print(json.dumps({
        "bench": "ros2_latency", "bundle": BUNDLE, "seconds": args.seconds, "executor": args.executor,
        "realtime_priority": args.realtime_priority, "target_cpus": args.target_cpus,
        "node_params": args.node_param,
        "results": results,
        "policy_over_echo_p50": ratios, "goal_p50_ratio": 1.20,
        "goal_p50_met": all(v <= 1.20 for v in ratios.values()),
        "goal_no_loss_met": bool(p) and p["lost"] == 0, "echo_lost_top_rate": e.get("lost"),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "python": platform.python_version(), "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
    }))


def _spin(executor, context) -> None:
    while context.ok():
        try:
            executor.spin_once(timeout_sec=0.05)
        except Exception:  # shut down under us
            return


if __name__ == "__main__":
    main()
