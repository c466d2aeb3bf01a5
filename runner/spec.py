"""Experiment specs: load a TOML file, apply --set overrides, validate, expand the grid.

Runs are the cartesian product of the grid axes in a fixed order, the last
varying fastest: ``epochs, output, update, hidden, stop_below, diverge_above,
init, alpha, seed`` (axes not in the grid are fixed). ``run_id`` is the position
in that order. The first six are kernel-wide, so the runs of one shape form
contiguous blocks, and each block is cut into chunks of at most ``chunk_runs``
(whole kernel tiles where ``chunk_runs`` allows, so no lane of a tile idles).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runner import data as datasets
from runner.errors import RunnerError
from runner.kernels import TILE
from runner.train import OUTPUTS, UPDATES, slots

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 10000,
    "alpha": 0.1,
    "hidden": 4,
    "seed": 0,
    "output": "linear",
    "update": "sequential",
    "init": [0.0, 1.0],
    "stop_below": None,
    "diverge_above": None,
}
KERNEL_KEYS = ("epochs", "output", "update", "hidden", "stop_below", "diverge_above")
RUN_KEYS = ("init", "alpha", "seed")
AXIS_ORDER = KERNEL_KEYS + RUN_KEYS
TOP_KEYS = ("name", "data", "train", "grid", "record", "sweep")
DATA_KEYS = ("builtin", "path", "features", "targets")
RECORD_KEYS = ("every", "loss_dtype")
SWEEP_KEYS = ("chunk_runs",)
MAX_RUNS = 1_000_000  # larger grids need an explicit yes
CHUNK_ROWS = 1 << 21  # automatic chunks hold about this many loss rows


def _check_keys(table: dict, valid: tuple[str, ...], prefix: str, fail) -> None:
    """Refuse a key not in ``valid``, naming the nearest valid one."""
    for key in table:
        if key not in valid:
            fail(f"{prefix}{key}", _suggest(key, valid))


def _suggest(key: str, valid: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
    return f"unknown key {key!r}{hint}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_value(key: str, v: Any, fail) -> Any:
    """Validate one [train] value; ``fail(msg)`` raises. Returns the normalised value."""
    if key in ("epochs", "hidden", "seed"):
        low = 0 if key == "seed" else 1
        if not _is_int(v):
            fail(f"must be an integer, got {v!r}")
        if v < low:
            fail(f"must be >= {low}, got {v}")
        if v > 2**31 - 1 and key != "seed":
            fail(f"is too large ({v})")
        return int(v)
    if key == "alpha":
        if not _is_num(v) or not math.isfinite(v) or v <= 0:
            fail(f"must be a finite number > 0, got {v!r}")
        return float(v)
    if key in ("stop_below", "diverge_above"):
        if v is None:
            return None
        if not _is_num(v) or not math.isfinite(v) or v <= 0:
            fail(f"must be a finite number > 0, got {v!r}")
        return float(v)
    if key in ("output", "update"):
        choices = OUTPUTS if key == "output" else UPDATES
        if v not in choices:
            fail(f"must be one of {', '.join(map(repr, choices))}, got {v!r}")
        return v
    if key == "init":
        if not isinstance(v, list | tuple) or len(v) != 2 or not all(map(_is_num, v)):
            fail(f"must be a pair [lo, hi] of numbers, got {v!r}")
        lo, hi = float(v[0]), float(v[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            fail(f"needs finite lo < hi, got {v!r}")
        return [lo, hi]
    raise AssertionError(key)


@dataclass
class Spec:
    """A validated experiment: everything a sweep needs, and nothing of how it runs."""

    name: str
    file: str
    data: dict[str, Any]
    train: dict[str, Any]
    grid: dict[str, Any]  # axis -> list of values, or a range dict for integer axes
    every: int
    loss_dtype: str
    chunk_runs: int
    X: np.ndarray = field(repr=False)
    Y: np.ndarray = field(repr=False)
    axes: dict[str, np.ndarray | list] = field(repr=False, default_factory=dict)

    # ----- grid geometry -----
    @property
    def axis_names(self) -> list[str]:
        return [k for k in AXIS_ORDER if k in self.grid]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.axes[k]) for k in self.axis_names)

    @property
    def n_runs(self) -> int:
        return math.prod(self.shape)

    @property
    def block(self) -> int:
        """Runs per kernel shape: the product of the run-level axes."""
        return math.prod(len(self.axes[k]) for k in RUN_KEYS if k in self.grid)

    @property
    def chunks_per_block(self) -> int:
        return -(-self.block // self.chunk_runs)

    @property
    def n_chunks(self) -> int:
        return (self.n_runs // self.block) * self.chunks_per_block

    def chunk_range(self, c: int) -> tuple[int, int]:
        """run_id range [start, stop) of chunk c."""
        b, p = divmod(c, self.chunks_per_block)
        size = -(-self.block // self.chunks_per_block)  # even pieces,
        size = min(-(-size // TILE) * TILE, self.chunk_runs)  # of whole kernel tiles
        start = b * self.block + p * size
        return start, min(start + size, (b + 1) * self.block)

    def params(self, run_ids: np.ndarray) -> dict[str, Any]:
        """Every run parameter for the given run ids: arrays for axes, scalars otherwise."""
        out: dict[str, Any] = dict(self.train)
        if self.axis_names:
            idx = np.unravel_index(np.asarray(run_ids, dtype=np.int64), self.shape)
            for k, i in zip(self.axis_names, idx, strict=True):
                values = self.axes[k]
                if isinstance(values, np.ndarray):
                    out[k] = values[i]
                else:
                    out[k] = [values[j] for j in i]
        return out

    # ----- identity -----
    def resolved(self) -> dict[str, Any]:
        """The spec as JSON-able data: what sweep.json stores and the hash covers."""
        return {
            "name": self.name,
            "data": self.data,
            "train": self.train,
            "grid": self.grid,
            "axis_order": self.axis_names,
            "record": {"every": self.every, "loss_dtype": self.loss_dtype},
            "sweep": {"chunk_runs": self.chunk_runs},
        }

    @property
    def hash(self) -> str:
        text = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def recorded_per_run(self) -> int:
        epochs = self.axes["epochs"] if "epochs" in self.grid else [self.train["epochs"]]
        return max(slots(int(e), self.every) + 1 for e in epochs)


def parse_override(text: str, where: str) -> tuple[list[str], Any]:
    """``KEY=VALUE`` -> (key path, value). VALUE is TOML, or comma-separated TOML, or a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(NAME_RE.fullmatch(p) for p in key.split(".")):
        raise RunnerError(f"--set expects KEY=VALUE, got {text!r}", file=where, key="--set")
    raw = raw.strip()

    def one(s: str) -> Any:
        try:
            return tomllib.loads(f"v = {s}")["v"]
        except tomllib.TOMLDecodeError:
            return s

    value = one(raw)
    if isinstance(value, str) and "," in raw and not raw.startswith(("'", '"')):
        value = [one(p.strip()) for p in raw.split(",")]
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str], where: str) -> None:
    for text in overrides:
        path, value = parse_override(text, where)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RunnerError(f"{part!r} is not a table", file=where, key=".".join(path))
        if path[0] == "grid" and len(path) == 2 and not isinstance(value, list | dict):
            value = [value]
        node[path[-1]] = value


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read, override, validate and expand a spec; raise RunnerError on any problem."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunnerError("spec file not found", file=where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunnerError(f"cannot read spec ({exc.__class__.__name__})", file=where) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RunnerError(f"TOML syntax error: {exc}", file=where) from None
    apply_overrides(raw, list(overrides or []), where)
    return build_spec(raw, where, base=path.parent)


def build_spec(raw: dict[str, Any], where: str, base: Path | None = None) -> Spec:
    def fail(key: str, msg: str):
        raise RunnerError(msg, file=where, key=key)

    _check_keys(raw, TOP_KEYS, "", fail)
    for key in ("data", "train", "grid", "record", "sweep"):
        if not isinstance(raw.get(key, {}), dict):
            fail(key, f"must be a table, got {type(raw[key]).__name__}")

    name = raw.get("name")
    if name is None:
        fail("name", "missing (results go to <out>/<name>/)")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > 200:
        fail("name", f"must match [A-Za-z0-9][A-Za-z0-9._-]*, got {name!r}")

    data_spec, X, Y = _load_data(raw.get("data", {}), where, base, fail)

    train = dict(TRAIN_DEFAULTS)
    for key, value in raw.get("train", {}).items():
        if key not in TRAIN_DEFAULTS:
            fail(f"train.{key}", _suggest(key, tuple(TRAIN_DEFAULTS)))
        train[key] = value
    for key, value in train.items():
        train[key] = check_value(key, value, lambda m, k=key: fail(f"train.{k}", m))

    grid: dict[str, Any] = {}
    axes: dict[str, Any] = {}
    for key, value in raw.get("grid", {}).items():
        if key not in TRAIN_DEFAULTS:
            fail(f"grid.{key}", _suggest(key, tuple(TRAIN_DEFAULTS)))
        grid[key], axes[key] = _axis(key, value, lambda m, k=key: fail(f"grid.{k}", m))

    record = raw.get("record", {})
    _check_keys(record, RECORD_KEYS, "record.", fail)
    every = record.get("every", 1)
    if not _is_int(every) or every < 1:
        fail("record.every", f"must be an integer >= 1, got {every!r}")
    loss_dtype = record.get("loss_dtype", "float32")
    if loss_dtype not in ("float32", "float64"):
        fail("record.loss_dtype", f"must be 'float32' or 'float64', got {loss_dtype!r}")

    sweep = raw.get("sweep", {})
    _check_keys(sweep, SWEEP_KEYS, "sweep.", fail)
    chunk_runs = sweep.get("chunk_runs", 0)
    if not _is_int(chunk_runs) or chunk_runs < 0:
        fail(
            "sweep.chunk_runs", f"must be an integer >= 1 (or 0 for automatic), got {chunk_runs!r}"
        )

    spec = Spec(name, where, data_spec, train, grid, every, loss_dtype, 1, X, Y, axes)
    if chunk_runs == 0:
        chunk_runs = auto_chunk_runs(spec.recorded_per_run)
    spec.chunk_runs = chunk_runs
    return spec


def auto_chunk_runs(rows_per_run: int) -> int:
    """Runs per chunk: about CHUNK_ROWS loss rows, whole kernel tiles, at most 8192 runs."""
    runs = CHUNK_ROWS // max(rows_per_run, 1)
    return int(min(max(TILE, runs // TILE * TILE), 8192))


def _axis(key: str, value: Any, fail) -> tuple[Any, Any]:
    """A grid axis -> (its JSON form, its values as an array or list)."""
    if isinstance(value, dict):
        if "num" in value:
            return _spaced(key, value, fail)
        allowed = ("start", "stop", "step")
        for k in value:
            if k not in allowed:
                fail(_suggest(k, (*allowed, "num", "log")))
        if key not in ("seed", "hidden", "epochs"):
            fail("a range {start, stop, step} needs an integer axis; use {start, stop, num} here")
        if "start" not in value or "stop" not in value:
            fail("a range needs 'start' and 'stop' (stop excluded)")
        start, stop, step = value["start"], value["stop"], value.get("step", 1)
        if not all(map(_is_int, (start, stop, step))) or step < 1:
            fail(f"start, stop and step must be integers, step >= 1, got {value!r}")
        if stop <= start:
            fail(f"is empty: stop ({stop}) must exceed start ({start})")
        values = np.arange(start, stop, step, dtype=np.int64)
        check_value(key, int(values[0]), fail)
        check_value(key, int(values[-1]), fail)
        return {"start": start, "stop": stop, "step": step}, values
    if not isinstance(value, list):
        fail(f"must be a list of values or a range table, got {value!r}")
    if len(value) == 0:
        fail("is empty: give at least one value")
    values = [check_value(key, v, fail) for v in value]
    seen = set()
    for v in values:
        marker = json.dumps(v)
        if marker in seen:
            fail(f"lists {v!r} twice")
        seen.add(marker)
    if key in ("epochs", "hidden", "seed"):
        return values, np.array(values, dtype=np.int64)
    if key in ("alpha", "stop_below", "diverge_above") and None not in values:
        return values, np.array(values, dtype=np.float64)
    return values, values


def _spaced(key: str, value: dict, fail) -> tuple[Any, Any]:
    allowed = ("start", "stop", "num", "log")
    for k in value:
        if k not in allowed:
            fail(_suggest(k, allowed))
    if key not in ("alpha", "stop_below", "diverge_above"):
        fail("spaced values {start, stop, num} need a real-valued axis (alpha, ...)")
    start, stop, num, log = value.get("start"), value.get("stop"), value["num"], value.get("log")
    if not _is_num(start) or not _is_num(stop):
        fail("spaced values need numeric 'start' and 'stop'")
    if not _is_int(num) or num < 1:
        fail(f"'num' must be an integer >= 1, got {num!r}")
    if log is None:
        log = False
    if not isinstance(log, bool):
        fail(f"'log' must be true or false, got {log!r}")
    check_value(key, start, fail)
    check_value(key, stop, fail)
    if num > 1 and start == stop:
        fail("start equals stop: the values would repeat")
    if log:
        values = np.geomspace(float(start), float(stop), num)
    else:
        values = np.linspace(float(start), float(stop), num)
    return {"start": start, "stop": stop, "num": num, "log": log}, values


def _load_data(raw: dict, where: str, base: Path | None, fail):
    _check_keys(raw, DATA_KEYS, "data.", fail)
    if "builtin" in raw and "path" in raw:
        fail("data", "give either 'builtin' or 'path', not both")
    if "path" in raw:
        rel = raw["path"]
        if not isinstance(rel, str) or not rel:
            fail("data.path", f"must be a file path string, got {rel!r}")
        for key in ("features", "targets"):
            cols = raw.get(key)
            if cols is not None and (
                not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols)
            ):
                fail(f"data.{key}", f"must be a non-empty list of column names, got {cols!r}")
        candidates = [Path(rel)]
        if base is not None and not Path(rel).is_absolute():
            candidates.insert(0, base / rel)
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            tried = " or ".join(str(p) for p in candidates)
            fail("data.path", f"data file not found (tried {tried})")
        try:
            X, Y = datasets.load_file(found, raw.get("features"), raw.get("targets"))
        except RunnerError as exc:
            # name the spec and the key as well as the data file
            raise RunnerError(
                f"{exc.file}: {exc.reason}", file=where, key=exc.key or "data.path"
            ) from None
        digest = hashlib.sha256(found.read_bytes()).hexdigest()[:16]
        spec = {"path": str(rel), "features": raw.get("features"), "targets": raw.get("targets")}
        spec["sha256"] = digest
        return spec, X, Y
    name = raw.get("builtin", "seed")
    if not isinstance(name, str) or name not in datasets.BUILTINS:
        fail("data.builtin", f"unknown dataset {name!r}; choose one of {sorted(datasets.BUILTINS)}")
    X, Y = datasets.builtin(name)
    return {"builtin": name}, X, Y
