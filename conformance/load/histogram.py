"""Latency histograms that merge: HDR-style log-linear buckets, stored as counts, never as
percentiles.

Why not store p50/p95/p99? Percentiles of parts cannot be combined: the p99 of two hosts' runs
is not any function of their two p99s. Bucket counts add up, so ``load --part i/N`` runs on N
machines merge (``report --merge``) into the one distribution a single machine would have
measured, up to the bucket width.

Buckets (HdrHistogram's layout): values are integers (microseconds here). Below
``2**SIGNIFICANT_BITS`` every value has its own bucket; above it each power-of-two range is cut
into ``2**(SIGNIFICANT_BITS - 1)`` equal buckets, so a bucket is never wider than
``1 / 2**(SIGNIFICANT_BITS - 1)`` of its values (1.6 % with the 7 bits used here). A quantile
is reported as the highest value of its bucket, clipped to the exact maximum, so it is never
below the truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.errors import UsageError

SIGNIFICANT_BITS = 7
_LINEAR = 1 << SIGNIFICANT_BITS  # 128 buckets of width 1
_HALF = _LINEAR >> 1  # 64 buckets per power of two above that
FORMAT = "log-linear"


def bucket_of(value: int) -> int:
    """The bucket index of a non-negative integer value (monotonic in ``value``)."""
    if value < 0:
        raise ValueError(f"histogram values are non-negative, got {value}")
    if value < _LINEAR:
        return value
    shift = value.bit_length() - SIGNIFICANT_BITS
    mantissa = value >> shift  # in [_HALF, _LINEAR)
    return _LINEAR + (shift - 1) * _HALF + (mantissa - _HALF)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The lowest and the highest value that fall in bucket ``index``."""
    if index < _LINEAR:
        return index, index
    shift, offset = divmod(index - _LINEAR, _HALF)
    shift += 1
    low = (_HALF + offset) << shift
    return low, low + (1 << shift) - 1


@dataclass
class Histogram:
    """Counts per bucket, plus the exact count, sum, minimum and maximum."""

    counts: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: int = 0
    minimum: int | None = None
    maximum: int | None = None

    def record(self, value: int, times: int = 1) -> None:
        index = bucket_of(value)
        self.counts[index] = self.counts.get(index, 0) + times
        self.count += times
        self.total += value * times
        self.minimum = value if self.minimum is None else min(self.minimum, value)
        self.maximum = value if self.maximum is None else max(self.maximum, value)

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other``'s counts into this histogram (in place) and return it."""
        for index, n in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        for attr, pick in (("minimum", min), ("maximum", max)):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            if theirs is not None:
                setattr(self, attr, theirs if mine is None else pick(mine, theirs))
        return self

    def quantile(self, q: float) -> int | None:
        """The value at quantile ``q`` (0..1): its bucket's top, clipped to the maximum."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} is outside 0..1")
        if self.count == 0:
            return None
        rank = max(1, -(-int(q * self.count * 1_000_000) // 1_000_000))  # ceil, float-safe
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                top = bucket_bounds(index)[1]
                assert self.maximum is not None
                return min(top, self.maximum)
        return self.maximum

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def summary(self, scale: float = 1e-3) -> dict[str, float | int | None]:
        """p50/p95/p99/max (and count), each multiplied by ``scale`` (µs to ms by default)."""

        def scaled(v: int | None) -> float | None:
            return None if v is None else round(v * scale, 3)

        return {
            "count": self.count,
            "p50": scaled(self.quantile(0.50)),
            "p95": scaled(self.quantile(0.95)),
            "p99": scaled(self.quantile(0.99)),
            "max": scaled(self.maximum),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "significant_bits": SIGNIFICANT_BITS,
            "unit": "us",
            "count": self.count,
            "sum": self.total,
            "min": self.minimum,
            "max": self.maximum,
            # JSON keys are strings; sorted so two equal histograms serialise alike.
            "buckets": {str(i): self.counts[i] for i in sorted(self.counts)},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Histogram:
        """Read back ``to_json``'s output; ``UsageError`` for another layout or a broken one."""
        if not isinstance(data, Mapping):
            raise UsageError("a latency histogram must be a JSON object")
        if data.get("format") != FORMAT or data.get("significant_bits") != SIGNIFICANT_BITS:
            raise UsageError(
                f"latency histogram layout {data.get('format')!r}/"
                f"{data.get('significant_bits')!r} bits is not {FORMAT!r}/{SIGNIFICANT_BITS}: "
                "it cannot be merged with this kit's"
            )
        try:
            counts = {int(k): int(v) for k, v in dict(data.get("buckets") or {}).items()}
            h = cls(
                counts=counts,
                count=int(data.get("count", 0)),
                total=int(data.get("sum", 0)),
                minimum=None if data.get("min") is None else int(data["min"]),
                maximum=None if data.get("max") is None else int(data["max"]),
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(f"broken latency histogram: {exc}") from None
        if sum(counts.values()) != h.count or any(v < 0 for v in counts.values()):
            raise UsageError("broken latency histogram: bucket counts do not add up to count")
        return h


def merged(histograms: Iterable[Histogram]) -> Histogram:
    """One histogram holding all of ``histograms``' values."""
    out = Histogram()
    for h in histograms:
        out.merge(h)
    return out
