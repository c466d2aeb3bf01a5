"""``[record]``: what a sweep keeps besides the runs table (docs/results.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.plan import params as P

RECORD_KEYS = ("every", "loss_dtype", "tail", "weights")
TAIL = 20  # [record] tail: the epochs of the runs table's tail_mean
WEIGHTS = ("final", "none")  # [record] weights: each run's final weights, or none


@dataclass
class Record:
    every: int  # 0: no losses recorded
    loss_dtype: str
    tail: int
    weights: str  # "final" or "none"
    tail_given: bool  # [record] names tail
    weights_given: bool  # [record] names weights


def parse_record(record: dict[str, Any], fail) -> Record:
    """A spec's [record] table, validated; ``fail(key, msg)`` raises."""
    for key in record:
        if key not in RECORD_KEYS:
            fail(f"record.{key}", P.suggest(key, RECORD_KEYS))
    every = record.get("every", 1)
    if not P.is_int(every) or every < 0 or every > P.INT32_MAX:
        fail("record.every", f"must be an integer >= 1 (or 0: no losses, only the runs table), "
             f"got {every!r}")  # fmt: skip
    tail = record.get("tail", TAIL)
    if not P.is_int(tail) or tail < 1 or tail > P.INT32_MAX:
        fail("record.tail", f"must be an integer >= 1 (epochs), got {tail!r}")
    loss_dtype = record.get("loss_dtype", "float32")
    if loss_dtype not in ("float32", "float64"):
        fail("record.loss_dtype", f"must be 'float32' or 'float64', got {loss_dtype!r}")
    weights = record.get("weights", "final" if every != 0 else "none")
    if weights not in WEIGHTS:
        fail("record.weights", f"must be 'final' or 'none', got {weights!r}")
    return Record(int(every), loss_dtype, int(tail), weights, "tail" in record,
                  "weights" in record)  # fmt: skip
