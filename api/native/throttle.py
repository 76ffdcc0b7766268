"""Per-account API rate limit (CloudStack's ApiRateLimitServiceImpl, ``api.throttling.*``).

Each account gets a window of ``api.throttling.interval`` seconds starting at its first
request; more than ``api.throttling.max`` requests in the window are answered 429 until
it ends. Root admins are never throttled. The counts live in this process, as
CloudStack's do in each management server: N servers behind a balancer allow N times the rate.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from core.errors import RateLimitExceeded


@dataclasses.dataclass(frozen=True)
class Rate:
    enabled: bool
    interval_seconds: int
    maximum: int


def settings(session, config) -> Rate:
    """The throttling settings now in force (read in the request's authentication transaction)."""
    if not config.get(session, "api.throttling.enabled"):
        return Rate(False, 0, 0)
    return Rate(True, config.get(session, "api.throttling.interval"), config.get(session, "api.throttling.max"))


class Throttle:
    """The windows of one process. Safe to share between request threads."""

    #: windows kept at most (CloudStack's api.throttling.cachesize); older ones are dropped first
    MAX_ACCOUNTS = 50_000

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[int, list[float]] = {}  # account id -> [window start, requests]

    def check(self, caller, rate: Rate) -> None:
        """Count one request of ``caller``; ``RateLimitExceeded`` (429) beyond the rate."""
        if not rate.enabled or caller.is_root_admin:
            return
        now = self._clock()
        with self._lock:
            window = self._windows.get(caller.account_id)
            if window is None or now - window[0] >= rate.interval_seconds:
                if window is None and len(self._windows) >= self.MAX_ACCOUNTS:
                    self._drop_expired(now, rate.interval_seconds)
                window = self._windows[caller.account_id] = [now, 0]
            window[1] += 1
            if window[1] <= rate.maximum:
                return
            retry_ms = int((window[0] + rate.interval_seconds - now) * 1000)
        raise RateLimitExceeded(f"The given user has reached his/her account api limit, please retry after "
                                f"{max(retry_ms, 1)} ms.")

    def _drop_expired(self, now: float, interval: int) -> None:
        expired = [key for key, (start, _) in self._windows.items() if now - start >= interval]
        for key in expired or list(self._windows)[: len(self._windows) // 2]:
            del self._windows[key]
