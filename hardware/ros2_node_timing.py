"""When the policy node ticks, and when its newest state is too old to act on (no ROS needed).

Staleness is measured from the *arrival* of the newest state (`Ros2Robot.arrival`), whatever the
pacing: a state that arrived but was paced out (not ticked) ages from its arrival, not from the tick
that first sees it. The node's watchdog timer is restarted by every arrival and fires `watchdog_period`
after the last one, so with the default stale timeout (1.5 control periods) the safe command follows
the last state within two control periods for a driver at, below or above the control rate.
"""

from __future__ import annotations

#: The watchdog fires this long after the stale timeout at most, so that the state is certainly stale.
WATCHDOG_MARGIN = 0.0005


class StateSchedule:
    """When a fresh state runs a tick: a token bucket at the control rate. A token accrues per control
    period (at most `capacity`); a state that finds at least half a token ticks and spends one. A driver
    at the control rate has every state ticked, a late one and the next on time alike (the bucket
    absorbs the jitter); a faster driver is down-sampled to the control rate on average; after a gap
    at most `capacity` states tick in a row."""

    capacity = 2.0

    def __init__(self, period: float) -> None:
        self.period = period
        self.tokens = 1.0
        self.last: float | None = None

    def due(self, now: float) -> bool:
        """Whether the state arriving at `now` (seconds, monotonic) runs a tick; spends a token if so."""
        if self.last is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) / self.period)
        self.last = now
        if self.tokens < 0.5:
            return False
        self.tokens -= 1.0
        return True


def watchdog_period(stale_timeout: float, period: float) -> float:
    """Seconds from a state's arrival to the watchdog's tick: just past the stale timeout (a tenth of a
    control period, at most `WATCHDOG_MARGIN`), so that the tick finds that state stale."""
    return stale_timeout + min(0.1 * period, WATCHDOG_MARGIN)


def stale_detail(arrival: float | None, now: float, stale_timeout: float) -> str | None:
    """Why the newest state, which arrived at `arrival`, may not be acted on at `now` (seconds on one
    monotonic clock), or None while it is fresh (at most `stale_timeout` old)."""
    if arrival is None:
        return "no state has arrived"
    age = now - arrival
    if age > stale_timeout:
        return (f"the newest state arrived {age * 1e3:.1f} ms ago (stale timeout "
                f"{stale_timeout * 1e3:.1f} ms)")
    return None
