"""Liveness and readiness of one member, as ``/healthz`` and ``/readyz`` answer them.

Live: the poll loop called ``beat()`` within ``liveness_timeout_s``. Before the loop's
first beat (start-up: waiting for the brokers, creating topics, initialising
transactions) the member counts as live, because each of those steps has its own
timeout and exits the process when it runs out. After that, a loop that stops beating
(stuck in a callback, a deadlocked client, a runaway batch) turns ``/healthz`` red and
Kubernetes restarts the pod.

Ready: connected to the cluster, the group has handed this member its partitions (or
none: a member with nothing to do is still ready), and the window state of what it owns
is restored. Written by the loop thread, read by the HTTP thread: plain attribute reads
and writes of immutable values, so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Health:
    """The member's answers to "alive?" and "ready?"; the clock is injectable for tests."""

    def __init__(
        self, liveness_timeout_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.liveness_timeout_s = liveness_timeout_s
        self._clock = clock
        self._last_beat: float | None = None
        self.connected = False
        self.assigned = False
        self.restoring = False

    def beat(self) -> None:
        """The poll loop went round once (called every iteration: keep it one store)."""
        self._last_beat = self._clock()

    def since_beat(self) -> float | None:
        """Seconds since the loop last went round; ``None`` before its first round."""
        return None if self._last_beat is None else self._clock() - self._last_beat

    def live(self) -> tuple[bool, str]:
        """(alive, why) for ``/healthz``."""
        since = self.since_beat()
        if since is None:
            return True, "starting"
        if since > self.liveness_timeout_s:
            return False, f"poll loop stuck: no poll for {since:.1f}s"
        return True, f"polled {since:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        """(ready, why) for ``/readyz`` and the readiness gauge."""
        if not self.connected:
            return False, "not connected to Kafka"
        if not self.assigned:
            return False, "waiting for a partition assignment"
        if self.restoring:
            return False, "restoring window state"
        alive, why = self.live()
        if not alive:
            return False, why
        return True, "ready"
