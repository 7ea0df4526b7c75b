"""Regression files: an operation sequence (usually a shrunk failure) as JSON, and back.

The format is plain JSON so a reproducer can be read, diffed and edited by hand::

    {
      "format": "dialoginfo-conformance/explore-replay",
      "version": 1,
      "seed": 17,
      "limits": {"presentities": 3, ...},
      "meta": {"target": "kamailio", "finding": "B14", ...},
      "ops": [
        {"op": "publish", "handle": "p1", "publisher": 0, "presentity": 0,
         "body": {"seed": 5, "dialogs": [["d1", "trying"]], "invalid": null, "drop": []},
         "expires": 3600, "gap": 0.0},
        {"op": "fetch", "presentity": 0, "gap": 1.0}
      ]
    }

``loads(dumps(x)) == x`` for every sequence. Reading is strict: an unknown operation, a
missing or unexpected field, a value of the wrong type, or another format or version raises
``UsageError`` naming the step and the field, never a traceback. ``meta`` is free-form (what
the runner wants to remember: the target, the finding, the requirement ids).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.explore.bodies import PARTS
from conformance.explore.ops import OP_TYPES, BodySpec, Limits, Op

FORMAT = "dialoginfo-conformance/explore-replay"
VERSION = 1


@dataclass(frozen=True)
class Replay:
    """What a regression file holds."""

    ops: tuple[Op, ...]
    seed: int | None = None
    limits: Limits = field(default_factory=Limits)
    meta: Mapping[str, Any] = field(default_factory=dict)


def to_json(replay: Replay) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "seed": replay.seed,
        "limits": dataclasses.asdict(replay.limits),
        "meta": dict(replay.meta),
        "ops": [_op_json(op) for op in replay.ops],
    }


def dumps(replay: Replay) -> str:
    """The file's text: indented, one key order, Unicode kept readable."""
    return json.dumps(to_json(replay), indent=2, ensure_ascii=False) + "\n"


def write(path: str | Path, replay: Replay) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(replay), encoding="utf-8")
    return path


def loads(text: str, *, source: str = "replay") -> Replay:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: not JSON: {exc.msg} (line {exc.lineno})") from None
    return from_json(data, source=source)


def read(path: str | Path) -> Replay:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the replay file {path}: {exc}") from None
    return loads(text, source=str(path))


def from_json(data: Any, *, source: str = "replay") -> Replay:
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a replay file is a JSON object")
    if data.get("format") != FORMAT:
        raise UsageError(f"{source}: format is {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("version") != VERSION:
        raise UsageError(f"{source}: version {data.get('version')!r} is not supported ({VERSION})")
    seed = data.get("seed")
    if seed is not None and not _is_int(seed):
        raise UsageError(f"{source}: seed must be an integer or null, not {seed!r}")
    raw_limits = data.get("limits", {})
    if isinstance(raw_limits, dict) and "modify_terminated" in raw_limits:
        # Its name before refresh and expire joined it (files written before 2026-11-30).
        raw_limits = {**raw_limits}
        raw_limits.setdefault("update_terminated", raw_limits.pop("modify_terminated"))
    limits = _build(Limits, raw_limits, f"{source}: limits")
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise UsageError(f"{source}: meta must be an object")
    raw_ops = data.get("ops")
    if not isinstance(raw_ops, list):
        raise UsageError(f"{source}: ops must be a list")
    ops = tuple(_op_from(item, f"{source}: step {i}") for i, item in enumerate(raw_ops, 1))
    return Replay(ops=ops, seed=seed, limits=limits, meta=meta)


# --------------------------------------------------------------------------- internals


def _op_json(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"op": op.kind}
    for f in dataclasses.fields(op):
        value = getattr(op, f.name)
        if isinstance(value, BodySpec):
            value = {
                "seed": value.seed,
                "dialogs": [list(d) for d in value.dialogs],
                "invalid": value.invalid,
                "drop": list(value.drop),
            }
        out[f.name] = value
    return out


def _op_from(item: Any, where: str) -> Op:
    if not isinstance(item, dict):
        raise UsageError(f"{where}: a step is a JSON object")
    kind = item.get("op")
    cls = OP_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UsageError(f"{where}: unknown op {kind!r}; known: {', '.join(sorted(OP_TYPES))}")
    fields = {k: v for k, v in item.items() if k != "op"}
    return _build(cls, fields, f"{where} ({kind})")


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise UsageError(f"{where}: expected an object")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unexpected = sorted(set(values) - set(known))
    if unexpected:
        raise UsageError(f"{where}: unexpected field(s) {', '.join(unexpected)}")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        if name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UsageError(f"{where}: missing field {name!r}")
            continue
        kwargs[name] = _value(hints[name], values[name], f"{where}: field {name!r}")
    return cls(**kwargs)


def _value(hint: Any, value: Any, where: str) -> Any:
    if hint is BodySpec:
        spec = _build(BodySpec, value, where)
        dialogs = spec.dialogs
        if not isinstance(dialogs, Sequence) or not all(
            isinstance(d, Sequence) and len(d) == 2 and all(isinstance(x, str) for x in d)
            for d in dialogs
        ):
            raise UsageError(f"{where}: dialogs is a list of [id, state] string pairs")
        unknown = sorted(set(spec.drop) - set(PARTS))
        if unknown:
            raise UsageError(f"{where}: unknown body parts {unknown}; known: {', '.join(PARTS)}")
        return dataclasses.replace(spec, dialogs=tuple(tuple(d) for d in dialogs))
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is bool and isinstance(value, bool):
            return value
        if option is int and _is_int(value):
            return value
        if option is float and (_is_int(value) or isinstance(value, float)):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is tuple and isinstance(value, list):
            if typing.get_args(option) == (str, ...):
                if all(isinstance(v, str) for v in value):
                    return tuple(value)
            else:
                return value  # checked by the caller (BodySpec.dialogs)
    raise UsageError(f"{where}: {value!r} is not a valid {hint}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


__all__ = ["FORMAT", "VERSION", "Replay", "dumps", "from_json", "loads", "read", "to_json", "write"]
