"""Parts of a distributed load run as one (``report --merge``): pure, no I/O.

Each ``load --part i/N`` measures its own presentities on its own clock; their histograms add up
bucket by bucket, so the merged percentiles are those of the whole population of NOTIFYs, not
an average of percentiles. Step ``k`` of every part ran at the same planned rate share, so the
parts' step ``k`` are merged and their rates added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conformance.errors import UsageError
from conformance.load.analysis import StepStats, first_knee, loss_ratio
from conformance.load.histogram import Histogram


def merge_sections(sections: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Parts of one distributed run as one: counts added, histograms merged (step by step)."""
    if not sections:
        raise UsageError("nothing to merge")
    for s in sections:
        for key in ("totals", "latency", "steps", "cpu_seconds"):
            if key not in s:
                raise UsageError(f"a load section without {key!r} cannot be merged")
    totals: dict[str, int] = {}
    for s in sections:
        for k, v in s.get("totals", {}).items():
            totals[k] = totals.get(k, 0) + int(v)
    latency = Histogram()
    for s in sections:
        latency.merge(Histogram.from_json(s["latency"]))
    steps: dict[int, dict[str, Any]] = {}
    for s in sections:
        for st in s.get("steps", []):
            cur = steps.setdefault(
                int(st["step"]),
                {"step": st["step"], "rate": 0.0, "publications": 0, "seconds": st["seconds"],
                 "delivered": 0, "lost": 0, "hist": Histogram()},
            )  # fmt: skip
            cur["rate"] += float(st["rate"])
            cur["publications"] += int(st["publications"])
            cur["delivered"] += int(st["delivered"])
            cur["lost"] += int(st["lost"])
            cur["seconds"] = max(float(cur["seconds"]), float(st["seconds"]))
            cur["hist"].merge(Histogram.from_json(st["latency"]))
    merged_steps = []
    for index in sorted(steps):
        cur = steps[index]
        stats = StepStats(index, round(cur["rate"], 6), 0.0, cur["seconds"], cur["hist"])
        stats.publications, stats.delivered, stats.lost = (
            cur["publications"],
            cur["delivered"],
            cur["lost"],
        )
        merged_steps.append(stats)
    first = sections[0]
    return {
        "run_id": "+".join(str(s.get("run_id")) for s in sections),
        "options": dict(first.get("options", {}), part="merged"),
        "valid": all(s.get("valid") for s in sections),
        "invalid_reasons": [r for s in sections for r in s.get("invalid_reasons", [])],
        "warnings": [w for s in sections for w in s.get("warnings", [])],
        "subscriptions": sum(int(s.get("subscriptions", 0)) for s in sections),
        "totals": dict(sorted(totals.items())),
        "loss_ratio": round(loss_ratio(totals), 6),
        "latency": latency.to_json(),
        "latency_ms": latency.summary(),
        "steps": [s.to_json() for s in merged_steps],
        "knee": first_knee(merged_steps),
        "wrong_views": [w for s in sections for w in s.get("wrong_views", [])][:20],
        "oracle": _merge_oracle([s.get("oracle") for s in sections]),
        "udp": {
            "parts": [s.get("udp") for s in sections],
            "kit_socket_drops": {
                f"part {i + 1}": sum((s.get("udp") or {}).get("kit_socket_drops", {}).values())
                for i, s in enumerate(sections)
            },
            "server_socket_drops": sum(
                int((s.get("udp") or {}).get("server_socket_drops", 0)) for s in sections
            ),
        },
        "cpu_seconds": {
            "kit": round(sum(float(s["cpu_seconds"]["kit"]) for s in sections), 3),
            "server": round(sum(float(s["cpu_seconds"]["server"]) for s in sections), 3),
        },
        "parts": sorted(p for s in sections for p in s.get("parts", [])),
    }


def _merge_oracle(parts: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    present = [p for p in parts if p]
    if not present:
        return None
    return {
        "subscriptions": sum(int(p.get("subscriptions", 0)) for p in present),
        "notifies": sum(int(p.get("notifies", 0)) for p in present),
        "bodies_checked": sum(int(p.get("bodies_checked", 0)) for p in present),
        "verdict": "fail" if any(p.get("verdict") == "fail" for p in present) else "pass",
        "failures": [f for p in present for f in p.get("failures", [])][:20],
    }
