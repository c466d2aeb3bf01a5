"""``[record]``: what a sweep keeps besides the runs table (docs/results.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.plan import params as P

RECORD_KEYS = ("every", "loss_dtype", "tail", "weights", "metrics")
TAIL = 20  # [record] tail: the epochs of the runs table's tail_mean
WEIGHTS = ("final", "none")  # [record] weights: each run's final weights, or none
METRICS = ("accuracy",)  # [record] metrics: kept beside the loss


@dataclass
class Record:
    every: int  # 0: no losses recorded
    loss_dtype: str
    tail: int
    weights: str  # "final" or "none"
    tail_given: bool  # [record] names tail
    weights_given: bool  # [record] names weights
    metrics: tuple[str, ...] = ()


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
    metrics = record.get("metrics", [])
    if (not isinstance(metrics, list) or any(m not in METRICS for m in metrics)
            or len(set(metrics)) < len(metrics)):  # fmt: skip
        fail("record.metrics", f"must be a list of distinct names from {list(METRICS)}, "
             f"got {metrics!r}")  # fmt: skip
    return Record(int(every), loss_dtype, int(tail), weights, "tail" in record,
                  "weights" in record, tuple(metrics))  # fmt: skip


def check_metrics(metrics: tuple[str, ...], outputs: set[str], Y, fail) -> None:
    """accuracy: a sigmoid output in every run, and targets of 0 and 1 only."""
    if not metrics:
        return
    if outputs != {"sigmoid"}:
        fail("record.metrics", "accuracy needs a sigmoid output in every run (outputs above "
             f"1/2 count as 1); the runs' outputs are {sorted(outputs)}")  # fmt: skip
    bad = Y[(Y != 0) & (Y != 1)]
    if bad.size:
        fail("record.metrics", f"accuracy needs targets of 0 and 1 only, got {bad[0]:g}")
