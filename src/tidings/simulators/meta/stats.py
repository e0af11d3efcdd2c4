"""What a simulator's webhook sender saw: POSTs per kind, answers, errors and latencies.

A provider only knows how long the receiver took to answer; that is the acknowledgement
latency a benchmark of the receiver reports (`bench/storm`). Memory is fixed whatever the
traffic: latencies go into a log-scale histogram (buckets 2 % wide, so a percentile read from
it is within 2 % of the exact one), counts into a few dicts keyed by kind, status code and
error class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

_FLOOR_MS = 0.05  # everything faster lands in bucket 0
_GROWTH = 1.02
_LOG_GROWTH = math.log(_GROWTH)


@dataclass
class LatencyHistogram:
    """Log-bucketed latencies in milliseconds; the exact maximum is kept beside them."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0

    def record(self, ms: float) -> None:
        index = 0 if ms <= _FLOOR_MS else 1 + int(math.log(ms / _FLOOR_MS) / _LOG_GROWTH)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bucket holding the q-quantile (never above the maximum)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(self.max_ms, _FLOOR_MS * _GROWTH**index)
        return self.max_ms

    def view(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "count": self.count,
            "mean_ms": rounded(self.total_ms / self.count) if self.count else None,
            "p50_ms": rounded(self.quantile(0.50)),
            "p95_ms": rounded(self.quantile(0.95)),
            "p99_ms": rounded(self.quantile(0.99)),
            "max_ms": rounded(self.max_ms) if self.count else None,
        }


@dataclass
class KindStats:
    """One kind of webhook (status, message, batch, raw)."""

    posts: int = 0  # attempts that got an answer or an error
    ok: int = 0  # answered 200, the only answer Meta counts as delivered
    by_status: dict[str, int] = field(default_factory=dict)  # every HTTP answer, by code
    errors: dict[str, int] = field(default_factory=dict)  # no answer: timeouts, refusals
    items_delivered: int = 0  # statuses or messages in POSTs that got their 200
    items_given_up: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def view(self) -> dict[str, Any]:
        non_2xx = sum(n for code, n in self.by_status.items() if not code.startswith("2"))
        return {
            "posts": self.posts,
            "ok": self.ok,
            "non_2xx": non_2xx,
            "transport_errors": sum(self.errors.values()),
            "by_status": dict(self.by_status),
            "errors": dict(self.errors),
            "items_delivered": self.items_delivered,
            "items_given_up": self.items_given_up,
            "latency": self.latency.view(),
        }


class WebhookStats:
    """Counters since the last `reset`, per webhook kind."""

    def __init__(self) -> None:
        self.kinds: dict[str, KindStats] = {}

    def _kind(self, kind: str) -> KindStats:
        stats = self.kinds.get(kind)
        if stats is None:
            stats = self.kinds[kind] = KindStats()
        return stats

    def answered(self, kind: str, status: int, seconds: float, items: int) -> None:
        stats = self._kind(kind)
        stats.posts += 1
        code = str(status)
        stats.by_status[code] = stats.by_status.get(code, 0) + 1
        stats.latency.record(seconds * 1000)
        if status == 200:
            stats.ok += 1
            stats.items_delivered += items

    def failed(self, kind: str, error: BaseException, seconds: float | None) -> None:
        stats = self._kind(kind)
        stats.posts += 1
        name = type(error).__name__
        stats.errors[name] = stats.errors.get(name, 0) + 1
        if seconds is not None:
            stats.latency.record(seconds * 1000)

    def gave_up(self, kind: str, items: int) -> None:
        self._kind(kind).items_given_up += items

    def reset(self) -> None:
        self.kinds.clear()

    def view(self) -> dict[str, Any]:
        return {kind: stats.view() for kind, stats in sorted(self.kinds.items())}
