"""Event serialization benchmark: why events are msgspec structs (docs/benchmarks.md).

Run from the repository root::

    .venv/bin/python -m tests.bench.serialization

It times encode, decode and the round trip of one ~1 KB ``NodeSucceeded`` event, the event every
node attempt produces, three ways:

- msgspec: the real :mod:`nodedrop.contracts.codec` (a tagged union of every event type);
- orjson: ``orjson.dumps`` of a frozen dataclass, ``orjson.loads`` to a dict and the dataclass
  built from it by hand (dispatch on ``type``, parse ``time``; no validation at all);
- pydantic v2: ``model_dump_json`` / ``model_validate_json`` of an equivalent frozen model.

orjson is not a dependency of nodedrop; for this benchmark only, install it with
``.venv/bin/pip install orjson``. Without it that row is left out.
"""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from nodedrop.contracts.codec import decode, encode
from nodedrop.contracts.events import NodeSucceeded

REPEATS = 9

Item = dict[str, Any]


def sample_output() -> dict[str, list[Item]]:
    """Eight order lines: about 1 KB of JSON with the event's envelope."""
    return {
        "main": [
            {
                "id": i,
                "sku": f"SKU-{i:05d}",
                "name": f"Widget number {i}",
                "price": 12.5 + i,
                "qty": i % 4 + 1,
                "tags": ["blue", "large"],
                "in_stock": i % 2 == 0,
            }
            for i in range(8)
        ]
    }


ENVELOPE: dict[str, Any] = {
    "event_id": "01JD3Z7Q8X9ABCDEF0123456.fetch.2.result",
    "execution_id": "01JD3Z7Q8X9ABCDEF0123456",
    "time": datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC),
    "node": "fetch",
    "attempt": 2,
}


# ------------------------------------------------------------------------------ (b) orjson


@dataclass(frozen=True, slots=True, kw_only=True)
class DataclassNodeSucceeded:
    event_id: str
    execution_id: str
    time: datetime
    node: str
    attempt: int
    output: dict[str, list[Item]]
    pinned: bool = False
    v: int = 1
    type: Literal["NodeSucceeded"] = "NodeSucceeded"


DATACLASS_TYPES: dict[str, type[DataclassNodeSucceeded]] = {"NodeSucceeded": DataclassNodeSucceeded}


def orjson_codec() -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]] | None:
    """``(encode, decode)`` with orjson, or None when it is not installed."""
    try:
        orjson = importlib.import_module("orjson")
    except ModuleNotFoundError:
        return None
    dumps: Callable[..., bytes] = orjson.dumps
    loads: Callable[[bytes], dict[str, Any]] = orjson.loads
    utc_z: int = orjson.OPT_UTC_Z

    def encode_orjson(event: DataclassNodeSucceeded) -> bytes:
        return dumps(event, option=utc_z)

    def decode_orjson(data: bytes) -> DataclassNodeSucceeded:
        raw = loads(data)
        cls = DATACLASS_TYPES[raw["type"]]
        raw["time"] = datetime.fromisoformat(raw["time"])
        return cls(**raw)

    return encode_orjson, decode_orjson


# ------------------------------------------------------------------------------ (c) pydantic


class PydanticNodeSucceeded(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["NodeSucceeded"] = "NodeSucceeded"
    event_id: str
    execution_id: str
    time: datetime
    v: int = 1
    node: str
    attempt: int
    output: dict[str, list[Item]]
    pinned: bool = False


def encode_pydantic(event: PydanticNodeSucceeded) -> bytes:
    return event.model_dump_json().encode()


def decode_pydantic(data: bytes) -> PydanticNodeSucceeded:
    return PydanticNodeSucceeded.model_validate_json(data)


# ------------------------------------------------------------------------------ timing


@dataclass(frozen=True)
class Contender:
    name: str
    event: Any
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


@dataclass(frozen=True)
class Result:
    name: str
    size: int
    encode_us: float
    decode_us: float
    round_trip_us: float


def contenders() -> list[Contender]:
    output = sample_output()
    found = [
        Contender(
            "msgspec Struct (nodedrop.contracts.codec)",
            NodeSucceeded(**ENVELOPE, output=output),
            encode,
            decode,
        )
    ]
    with_orjson = orjson_codec()
    if with_orjson is not None:
        encode_orjson, decode_orjson = with_orjson
        found.append(
            Contender(
                "orjson + dataclass",
                DataclassNodeSucceeded(**ENVELOPE, output=output),
                encode_orjson,
                decode_orjson,
            )
        )
    found.append(
        Contender(
            "pydantic v2 BaseModel",
            PydanticNodeSucceeded(**ENVELOPE, output=output),
            encode_pydantic,
            decode_pydantic,
        )
    )
    return found


def operations(contender: Contender) -> dict[str, Callable[[], object]]:
    """The three timed operations of one contender, after checking it really round-trips."""
    event, encode_, decode_ = contender.event, contender.encode, contender.decode
    data = encode_(event)
    if decode_(data) != event:
        raise AssertionError(f"{contender.name}: decode(encode(event)) != event")
    return {
        "encode": lambda: encode_(event),
        "decode": lambda: decode_(data),
        "round_trip": lambda: decode_(encode_(event)),
    }


def measure(found: list[Contender]) -> list[Result]:
    """Median µs per call over :data:`REPEATS` timeit runs of each operation.

    The runs are interleaved (every operation of every contender once, then again), so that a
    burst of load on a shared machine hits all of them alike instead of one contender.
    """
    timers = {(c.name, op): timeit.Timer(call) for c in found for op, call in operations(c).items()}
    # Calls per run: enough for a run of at least 0.2 s.
    numbers = {key: timer.autorange()[0] for key, timer in timers.items()}
    runs: dict[tuple[str, str], list[float]] = {key: [] for key in timers}
    for _ in range(REPEATS):
        for key, timer in timers.items():
            runs[key].append(timer.timeit(numbers[key]) / numbers[key] * 1e6)

    def us(name: str, op: str) -> float:
        return statistics.median(runs[name, op])

    return [
        Result(
            name=c.name,
            size=len(c.encode(c.event)),
            encode_us=us(c.name, "encode"),
            decode_us=us(c.name, "decode"),
            round_trip_us=us(c.name, "round_trip"),
        )
        for c in found
    ]


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    return f"{cores} cores, {model}, Python {platform.python_version()}"


def table(results: list[Result]) -> str:
    base = results[0].round_trip_us
    lines = [
        "| implementation | size (bytes) | encode (µs) | decode (µs) | round trip (µs) "
        "| round trip vs msgspec |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.name} | {r.size} | {r.encode_us:.2f} | {r.decode_us:.2f} | "
        f"{r.round_trip_us:.2f} | {r.round_trip_us / base:.1f}x |"
        for r in results
    ]
    return "\n".join(lines)


def main() -> None:
    out = sys.stdout.write
    out(f"Event serialization: one NodeSucceeded event; {machine()}\n")
    out(f"median of {REPEATS} timeit runs of >= 0.2 s each\n\n")
    if orjson_codec() is None:
        out(
            "orjson is not installed, its row is left out. It is not a nodedrop dependency;\n"
            "for this benchmark only: .venv/bin/pip install orjson\n\n"
        )
    results = measure(contenders())
    out(table(results) + "\n")


if __name__ == "__main__":
    main()
