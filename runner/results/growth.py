"""Growing a sweep in place (docs/growth.md).

A results folder holds one *layer* per invocation that changed its runs:
``sweep.json`` (the first) and ``grown/NNNN.json`` (each later one), every file
written once and never changed. A spec may grow the sweep when it differs from
the first only in the values of its ``[grid]`` axes and in ``[sample].points``;
anything else (data, [train] defaults, record settings, the set of axes,
the sampling method, chunk size) is refused unless ``--fresh``.
The new layer holds the runs of the spec that no earlier layer holds; its
run ids and chunk indices follow the earlier ones, so earlier files keep their
names and bytes. Concurrent shards agree: the first to arrive writes the
layer's file (an atomic link), the others read it.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from runner.errors import RunnerError
from runner.plan import params as P
from runner.plan.chunks import Plan, stack
from runner.plan.spec import Spec, layer_of
from runner.results import store


def frame(resolved: dict[str, Any]) -> dict[str, Any]:
    """What may not change when a sweep grows: all but grid values and sample points."""
    out = {k: v for k, v in resolved.items() if k not in ("chunk_runs", "axis_order")}
    out["grid"] = sorted(resolved["grid"])
    if "sample" in resolved:
        out["sample"] = {
            k: v for k, v in resolved["sample"].items() if k not in ("points", "sha256")
        }
    return out


def changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Key paths whose values differ, with both values (``train.epochs 300 -> 500``)."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "(absent)"), new.get(key, "(absent)")
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(changes(a, b, f"{path}."))
        elif a != b:
            show = "axes" if path == "grid" else ""
            out.append(f"{path}{' ' + show if show else ''} {_short(a)} -> {_short(b)}")
    return out


def _short(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_growable(folder: Path, first: dict[str, Any], spec: Spec) -> None:
    """Refuse a spec that differs from the sweep's first in more than grid values and points."""
    diff = changes(frame(first), frame(spec.resolved()))
    if diff:
        raise RunnerError(
            f"holds a different sweep ({'; '.join(diff)}); a sweep grows only by [grid] "
            "values and [sample] points: use --fresh to replace it or choose another name",
            file=str(folder),
        )


def layer_meta(spec: Spec, runs: int, chunks: int, run_offset: int, chunk_offset: int) -> dict:
    return {
        "spec": spec.resolved(),
        "spec_hash": spec.hash,
        "runs": runs,
        "chunks": chunks,
        "run_offset": run_offset,
        "chunk_offset": chunk_offset,
        "versions": store.versions(),
        "host": socket.gethostname(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
    }


def plan_of(folder: Path, files: list[dict[str, Any]], extra: Spec | None = None) -> Plan:
    """The plan of a sweep's layer files (and of a spec that would grow it)."""
    where = str(folder)
    layers = [layer_of(f["spec"], where) for f in files]
    if extra is not None:
        layers.append(layer_of(extra.resolved(), where))
    stack(layers)
    for layer, f in zip(layers, files, strict=False):
        if (layer.n_runs, layer.n_chunks) != (int(f["runs"]), int(f["chunks"])):
            raise RunnerError(
                f"planning again gives {layer.n_runs} runs in {layer.n_chunks} chunks where "
                f"{f['runs']} in {f['chunks']} were planned (another runner version?); "
                "use --fresh or another name",
                file=where,
            )
    return Plan(layers)


def adopt(spec: Spec, first: dict[str, Any]) -> None:
    """A spec resuming or growing a sweep begun by an older runner keeps that sweep's
    rules where the spec does not name the newer keys, so that its files keep one schema
    and the spec its hash: without ``record.tail`` in sweep.json, no first_loss and
    tail_mean; without ``record.weights``, no weights table; without
    ``train.diverge_factor``, only a non-finite loss diverges."""
    record = first.get("record", {})
    if "tail" not in record and not spec.tail_given:
        spec.tail = None
    if "weights" not in record and not spec.weights_given:
        spec.weights = "none"
    if "diverge_factor" not in first["train"] and "diverge_factor" not in spec.named:
        spec.train["diverge_factor"] = P.DEFAULTS["diverge_factor"]
        spec.layer = replace(layer_of(spec.resolved(), spec.file), chunk_runs=spec.chunk_runs)


def open_sweep(folder: Path, spec: Spec, fresh: bool = False, write: bool = True) -> Plan:
    """Create the sweep, resume it, or grow it by the runs of ``spec`` it lacks (which
    adopts the sweep's older record settings, ``adopt``).

    Returns the plan of every layer. With ``write=False`` only checks (nothing written).
    """
    if not fresh and (folder / store.META).is_file():
        first = store.read_json(folder / store.META)["spec"]
        adopt(spec, first)
        check_growable(folder, first, spec)
    if not write:
        if not (folder / store.META).is_file() or fresh:
            return Plan([layer_of(spec.resolved(), spec.file)])
        files = store.layer_files(folder)
        return plan_of(folder, files, spec if files[-1]["spec_hash"] != spec.hash else None)
    meta = store.new_meta(spec.resolved(), spec.hash, spec.n_runs, spec.n_chunks)
    store.prepare(folder, meta, fresh)
    while True:
        files = store.layer_files(folder)
        check_growable(folder, files[0]["spec"], spec)
        if files[-1]["spec_hash"] == spec.hash:
            return plan_of(folder, files)
        plan = plan_of(folder, files, spec)
        new = plan.layers[-1]
        meta = layer_meta(spec, new.n_runs, new.n_chunks, new.run_offset, new.chunk_offset)
        if store.add_layer(folder, len(files), meta):
            return plan
        # another process grew the sweep first: look again (same spec: use its layer)
