"""Experiment specs: load a TOML file (or a dict), apply --set overrides, validate, plan.

Runs are the cartesian product of the grid axes and the sampled points
(``[sample]``), planned by ``runner.plan.chunks``: the per-call axes in the order of
``params.PARAMS`` (``epochs, output, update, hidden, ..., dtype, fastmath, ...,
fold``), then the sampled points, then the per-run axes (``init, alpha, seed``), the
last varying fastest. ``run_id`` is the position in that order.
Every value is checked by its parameter's one rule (``runner.plan.params``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from runner.errors import RunnerError
from runner.plan import data as datasets
from runner.plan import folds as K
from runner.plan import holdout as H
from runner.plan import inits
from runner.plan import params as P
from runner.plan.chunks import TILE, Factor, Layer, make_layer, slots
from runner.plan.overrides import NAME_RE, apply_overrides
from runner.plan.record import TAIL, check_metrics, parse_record
from runner.plan.sample import build_sample

TRAIN_DEFAULTS: dict[str, Any] = dict(P.DEFAULTS)
TOP_KEYS = ("name", "data", "train", "grid", "sample", "record", "sweep")
DATA_KEYS = ("builtin", "path", "random", "features", "targets", "standardize", "validation",
             "split_seed", "kfold")  # fmt: skip
SWEEP_KEYS = ("chunk_runs",)
MAX_RUNS = 1_000_000  # larger grids need an explicit yes
CHUNK_ROWS = 1 << 21  # automatic chunks hold about this many loss rows
CHUNK_WEIGHT_BYTES = 64 << 20  # and at most this many bytes of weights (one copy)
DICT_SPEC = "spec (dict)"  # how errors name a spec given as a Python dict


def _check_keys(table: dict, valid: tuple[str, ...], prefix: str, fail) -> None:
    """Refuse a key not in ``valid``, naming the nearest valid one."""
    for key in table:
        if key not in valid:
            fail(f"{prefix}{key}", P.suggest(key, valid))


@dataclass(kw_only=True)
class Spec:
    """A validated experiment: everything a sweep needs, and nothing of how it runs."""

    name: str
    file: str
    data: dict[str, Any]
    train: dict[str, Any]
    grid: dict[str, Any]  # axis -> list of values, or a range dict for integer axes
    every: int  # 0: no losses recorded
    loss_dtype: str
    X: np.ndarray = field(repr=False)
    Y: np.ndarray = field(repr=False)
    layer: Layer = field(repr=False)  # the runs it plans, cut into chunks of chunk_runs
    sample: dict[str, Any] | None = None  # [sample] as resolved, with its points' digest
    chunk_runs_spec: int = 0  # as given (0: automatic)
    # the runs' first_loss and tail_mean over their last ``tail`` epochs; None: not kept
    # (a sweep begun before runner kept them, runner.results.growth.open_sweep)
    tail: int | None = TAIL
    tail_given: bool = False  # [record] names tail
    named: frozenset[str] = frozenset()  # the keys [train], [grid] and [sample] name
    init_weights: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # a file's
    # [record] weights: "final" (a weights/ table) or "none" (also a sweep begun before)
    weights: str = "none"
    weights_given: bool = False  # [record] names weights
    metrics: tuple[str, ...] = ()  # [record] metrics, e.g. ("accuracy",)
    # the held-out rows ([data] validation): True where held out, over X's rows; None: none
    holdout: np.ndarray | None = field(default=None, repr=False)
    # [data] kfold: each row's fold (int64; X, Y raw, runner.plan.folds); None: no folds
    folds: np.ndarray | None = field(default=None, repr=False)

    @property
    def chunk_runs(self) -> int:
        """Runs per chunk, effective (0 in the spec means automatic)."""
        return self.layer.chunk_runs

    # ----- plan geometry -----
    @property
    def axis_names(self) -> list[str]:
        """Parameters that vary (grid or sample), in table order."""
        return P.params_of(self.layer.varying)

    @property
    def model_params(self) -> list[str]:
        """The model family's parameters the tables hold columns for: those the spec names,
        by a value other than the default or as an axis (params.MODEL)."""
        named = set(self.axis_names) | {k for k in P.MODEL if self.train[k] != P.DEFAULTS[k]}
        return [k for k in P.OPTIONAL if k in named]

    @property
    def n_runs(self) -> int:
        return self.layer.n_runs

    @property
    def n_chunks(self) -> int:
        return self.layer.n_chunks

    def chunk_range(self, c: int) -> tuple[int, int]:
        """run_id range [start, stop) of chunk c."""
        return self.layer.chunk_range(c)

    # ----- identity -----
    def resolved(self) -> dict[str, Any]:
        """The spec as JSON-able data: what sweep.json stores and the hash covers."""
        out = {
            "name": self.name,
            "data": self.data,
            "train": named(self.train),
            "grid": self.grid,
            "axis_order": self.axis_names,
            "record": self.record(),
            "sweep": {"chunk_runs": self.chunk_runs_spec},
            "chunk_runs": self.chunk_runs,
        }
        if self.sample is not None:
            out["sample"] = self.sample
        return out

    def record(self) -> dict[str, Any]:
        """[record] as sweep.json holds it (tail only where kept, weights only where
        stored: older folders lack them)."""
        out: dict[str, Any] = {"every": self.every, "loss_dtype": self.loss_dtype}
        if self.tail is not None:
            out["tail"] = self.tail
        if self.weights != "none":
            out["weights"] = self.weights
        if self.metrics:
            out["metrics"] = list(self.metrics)
        return out

    @property
    def hash(self) -> str:
        text = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def recorded_per_run(self) -> int:
        return recorded_per_run(self.layer, self.train, self.every)

    @property
    def weight_bytes_per_run(self) -> int:
        """float64 bytes of one run's weights at the widest hidden size of the spec."""
        return weight_bytes_per_run(self.layer, self.train, self.X.shape[1] + self.Y.shape[1])


def named(train: dict[str, Any]) -> dict[str, Any]:
    """[train] as sweep.json holds it: the model family's keys only where not the default
    (so a spec of the notebook's model keeps the hash and sweep.json of older runners)."""
    return {k: v for k, v in train.items() if k not in P.OPTIONAL or v != P.DEFAULTS[k]}


def _values(layer: Layer, train: dict[str, Any], key: str) -> set:
    """The values of parameter ``key`` in the layer (its [train] value unless it varies)."""
    found = {train[key]}
    if key not in layer.fixed:
        for factor in layer.factors:
            if key in factor:
                found = set(factor[key].tolist())
    return found


def recorded_per_run(layer: Layer, train: dict[str, Any], every: int) -> int:
    """Loss rows of a run that trains every epoch, at the most epochs of the layer."""
    if every == 0:
        return 0
    return max(slots(int(e), every) + 1 for e in _values(layer, train, "epochs"))


def weight_bytes_per_run(layer: Layer, train: dict[str, Any], ends: int) -> int:
    """float64 bytes of one run's weights at the widest hidden size; ``ends``: inputs
    plus outputs."""
    return 8 * max(int(v) for v in _values(layer, train, "hidden")) * ends


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


def spec_from_dict(raw: dict[str, Any], overrides: list[str] | None = None) -> Spec:
    """A spec given as a Python dict (the TOML structure), validated the same way.

    Errors name the key path, e.g. ``spec (dict): grid.alpah: unknown key ...``.
    A relative ``data.path`` is taken from the current folder.
    """
    if not isinstance(raw, dict):
        raise RunnerError(f"a spec must be a dict, got {type(raw).__name__}", file=DICT_SPEC)
    raw = _plain(copy.deepcopy(raw))
    apply_overrides(raw, list(overrides or []), DICT_SPEC)
    return build_spec(raw, DICT_SPEC)


def _plain(value: Any) -> Any:
    """Tuples and arrays as lists, as TOML would give them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    return value


def build_spec(raw: dict[str, Any], where: str, base: Path | None = None) -> Spec:
    def fail(key: str, msg: str):
        raise RunnerError(msg, file=where, key=key)

    _check_keys(raw, TOP_KEYS, "", fail)
    for key in ("data", "train", "grid", "sample", "record", "sweep"):
        if not isinstance(raw.get(key, {}), dict):
            fail(key, f"must be a table, got {type(raw[key]).__name__}")

    name = raw.get("name")
    if name is None:
        fail("name", "missing (results go to <out>/<name>/)")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > 200:
        fail("name", f"must match [A-Za-z0-9][A-Za-z0-9._-]*, got {name!r}")

    data_spec, X, Y, holdout, folds = _load_data(raw.get("data", {}), where, base, fail)

    train = dict(TRAIN_DEFAULTS, diverge_factor=P.DIVERGE_FACTOR)  # a new spec's rule
    for key, value in raw.get("train", {}).items():
        if key not in TRAIN_DEFAULTS and key not in H.TRAIN_KEYS:
            fail(f"train.{key}", P.suggest(key, (*P.NAMES, *H.TRAIN_KEYS)))
        train[key] = value
    for key, value in train.items():
        if key not in H.TRAIN_KEYS:
            train[key] = P.check(key, value, fail=lambda m, k=key: fail(f"train.{k}", m))
    patience = H.patience(train, holdout if folds is None else folds, fail)
    if patience is not None:  # absent when not given: a spec without it keeps its hash
        train["patience"] = patience

    grid_raw = K.grid(raw, data_spec, fail)  # with kfold's axis
    grid, sample, layer = plan_layer(train, grid_raw, raw.get("sample"), fail)
    K.check_axis(_values(layer, train, "fold"), data_spec, fail)
    weights = inits.resolve(train, lambda k: _values(layer, train, k), X, Y, base, fail)
    if data_spec.get("standardize"):
        linear = outputs_of(layer) == {"linear"}  # the targets too
        X, Y = K.standardize(data_spec, X, Y, linear, holdout, folds)

    rec = parse_record(raw.get("record", {}), fail)
    check_metrics(rec.metrics, outputs_of(layer), Y, fail)

    sweep = raw.get("sweep", {})
    _check_keys(sweep, SWEEP_KEYS, "sweep.", fail)
    chunk_runs = sweep.get("chunk_runs", 0)
    if not P.is_int(chunk_runs) or chunk_runs < 0:
        fail(
            "sweep.chunk_runs", f"must be an integer >= 1 (or 0 for automatic), got {chunk_runs!r}"
        )

    effective = int(chunk_runs) or auto_chunk_runs(
        recorded_per_run(layer, train, rec.every),
        weight_bytes_per_run(layer, train, X.shape[1] + Y.shape[1]),
    )
    return Spec(name=name, file=where, data=data_spec, train=train, grid=grid, every=rec.every,
                loss_dtype=rec.loss_dtype, X=X, Y=Y, layer=replace(layer, chunk_runs=effective),
                sample=sample, chunk_runs_spec=int(chunk_runs), tail=rec.tail,
                tail_given=rec.tail_given, weights=rec.weights, weights_given=rec.weights_given,
                metrics=rec.metrics,
                named=frozenset(raw.get("train", {})) | frozenset(raw.get("grid", {}))
                | frozenset(raw.get("sample") or {}), init_weights=weights,
                holdout=holdout, folds=folds)  # fmt: skip


def plan_layer(train: dict[str, Any], grid_raw: dict[str, Any], sample_raw: dict | None, fail
               ) -> tuple[dict[str, Any], dict[str, Any] | None, Layer]:  # fmt: skip
    """Validated [train] values, raw [grid] and [sample] -> their resolved forms and the layer.

    ``fail(key, msg)`` raises. The layer's ``chunk_runs`` is left for the caller.
    """
    grid, factors = inits.grid_axes(grid_raw, train, _axis, fail)  # init and its numbers
    for key, value in grid_raw.items():
        if key in grid:
            continue
        if key in H.TRAIN_KEYS:
            fail(f"grid.{key}", "is one value for the whole sweep: give it in [train]")
        if key not in TRAIN_DEFAULTS:
            fail(f"grid.{key}", P.suggest(key, (*P.NAMES, *P.HALVES)))
        grid[key], factors[key] = _axis(key, value, lambda m, k=key: fail(f"grid.{k}", m))
    sample, points = None, None
    if sample_raw is not None:
        sample, points = build_sample(sample_raw, train, grid, fail)
    varying = set(points or {})
    for key in factors:
        varying.update(c for c, _ in P.BY_NAME[key].columns)
    fixed = {}
    for p in P.PARAMS:
        for (col, _), value in zip(p.columns, p.to_row(train[p.name]), strict=True):
            if col not in varying:
                fixed[col] = value
    return grid, sample, make_layer(fixed, factors, points, 1)


def layer_of(resolved: dict[str, Any], where: str) -> Layer:
    """The layer of a resolved spec (sweep.json), planned again; its sample points are checked."""

    def fail(key: str, msg: str):
        raise RunnerError(f"cannot plan again: {msg}", file=where, key=key)

    train = {k: P.check(k, v, fail=lambda m, k=k: fail(f"train.{k}", m))
             for k, v in {**TRAIN_DEFAULTS, **resolved["train"]}.items()
             if k not in H.TRAIN_KEYS}  # fmt: skip
    sample_raw = resolved.get("sample")
    if sample_raw is not None:
        sample_raw = {k: v for k, v in sample_raw.items() if k != "sha256"}
    _, sample, layer = plan_layer(train, resolved["grid"], sample_raw, fail)
    if sample is not None and sample["sha256"] != resolved["sample"]["sha256"]:
        fail("sample", "the sampled points differ from those this sweep was planned with "
             "(another scipy or numpy?); use --fresh or another name")  # fmt: skip
    # sweeps written before growth kept the effective chunk size under sweep.chunk_runs
    chunk_runs = int(resolved.get("chunk_runs") or resolved["sweep"]["chunk_runs"])
    return replace(layer, chunk_runs=chunk_runs)


def auto_chunk_runs(rows_per_run: int, weight_bytes_per_run: int = 0) -> int:
    """Runs per chunk: about CHUNK_ROWS loss rows and at most CHUNK_WEIGHT_BYTES of
    weights (wide problems), whole kernel tiles, at most 8192 runs."""
    runs = CHUNK_ROWS // max(rows_per_run, 1)
    runs = min(runs, CHUNK_WEIGHT_BYTES // max(weight_bytes_per_run, 1))
    return int(min(max(TILE, runs // TILE * TILE), 8192))


def _factor(key: str, values: list[Any]) -> Factor:
    """Normalised values of parameter ``key`` -> its columns (plan dtypes)."""
    if key in P.HALVES:
        return {key: np.array(values, dtype=np.float64)}
    p = P.BY_NAME[key]
    rows = [p.to_row(v) for v in values]
    return {
        col: np.array([r[j] for r in rows], dtype=P.NUMPY[dt])
        for j, (col, dt) in enumerate(p.columns)
    }


def _kind(key: str) -> str:
    if key in P.HALVES:
        return "float64"
    return P.BY_NAME[key].columns[0][1] if len(P.BY_NAME[key].columns) == 1 else "pair"


def _axis(key: str, value: Any, fail) -> tuple[Any, Factor]:
    """A grid axis -> (its JSON form, its factor)."""
    if isinstance(value, dict):
        if "num" in value:
            return _spaced(key, value, fail)
        allowed = ("start", "stop", "step")
        for k in value:
            if k not in allowed:
                fail(P.suggest(k, (*allowed, "num", "log")))
        if _kind(key) not in ("int32", "int64"):
            fail("a range {start, stop, step} needs an integer axis; use {start, stop, num} here")
        if "start" not in value or "stop" not in value:
            fail("a range needs 'start' and 'stop' (stop excluded)")
        start, stop, step = value["start"], value["stop"], value.get("step", 1)
        if not all(map(P.is_int, (start, stop, step))) or step < 1:
            fail(f"start, stop and step must be integers, step >= 1, got {value!r}")
        if stop <= start:
            fail(f"is empty: stop ({stop}) must exceed start ({start})")
        values = np.arange(start, stop, step, dtype=np.int64)
        P.check(key, int(values[0]), fail=fail)
        P.check(key, int(values[-1]), fail=fail)
        col = P.BY_NAME[key].columns[0]
        form = {"start": int(start), "stop": int(stop), "step": int(step)}
        return form, {col[0]: values.astype(P.NUMPY[col[1]])}
    if not isinstance(value, list):
        fail(f"must be a list of values or a range table, got {value!r}")
    if len(value) == 0:
        fail("is empty: give at least one value")
    values = [P.check(key, v, fail=fail) for v in value]
    seen = set()
    for v in values:
        marker = json.dumps(v)
        if marker in seen:
            fail(f"lists {v!r} twice")
        seen.add(marker)
    return values, _factor(key, values)


def _spaced(key: str, value: dict, fail) -> tuple[Any, Factor]:
    allowed = ("start", "stop", "num", "log")
    for k in value:
        if k not in allowed:
            fail(P.suggest(k, allowed))
    if _kind(key) != "float64":
        fail("spaced values {start, stop, num} need a real-valued axis (alpha, ...)")
    start, stop, num, log = value.get("start"), value.get("stop"), value["num"], value.get("log")
    if not P.is_num(start) or not P.is_num(stop):
        fail("spaced values need numeric 'start' and 'stop'")
    if not P.is_int(num) or num < 1 or num > 10**8:
        fail(f"'num' must be an integer from 1 to 10**8, got {num!r}")
    if log is None:
        log = False
    if not isinstance(log, bool):
        fail(f"'log' must be true or false, got {log!r}")
    P.check(key, start, fail=fail)
    P.check(key, stop, fail=fail)
    if num > 1 and start == stop:
        fail("start equals stop: the values would repeat")
    if log:
        values = np.geomspace(float(start), float(stop), num)
    else:
        values = np.linspace(float(start), float(stop), num)
    form = {"start": start, "stop": stop, "num": int(num), "log": log}
    return form, {key: values}


def outputs_of(layer: Layer) -> set[str]:
    """The output layers of the runs a layer plans."""
    if "output" in layer.fixed:
        return {P.OUTPUTS[int(layer.fixed["output"])]}
    return {P.OUTPUTS[int(v)] for f in layer.factors if "output" in f for v in f["output"]}


def _load_data(raw: dict, where: str, base: Path | None, fail):
    _check_keys(raw, DATA_KEYS, "data.", fail)
    flag = raw.get("standardize", False)
    if not isinstance(flag, bool):
        fail("data.standardize", f"must be true or false, got {flag!r}")
    form = K.parse(raw, fail)  # the keys first: a bad one is refused before any file is read
    spec, X, Y, found = _read_data(raw, where, base, fail)
    if flag:  # absent when false: a spec without the key keeps its hash
        spec["standardize"] = True
    holdout, folds = K.resolve(form, spec, len(X), (raw.get("path"), found, where), fail)
    return spec, X, Y, holdout, folds


def _read_data(raw: dict, where: str, base: Path | None, fail):
    given = [k for k in ("builtin", "path", "random") if k in raw]
    if len(given) > 1:
        fail("data", f"give one of 'builtin', 'path' or 'random', not {' and '.join(given)}")
    if "random" in raw:
        form = datasets.random_form(raw["random"], fail)
        return {"random": form}, *datasets.random(**form), None
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
        X, Y = datasets.in_spec(
            lambda: datasets.load_file(found, raw.get("features"), raw.get("targets")),
            (rel, found, where), "data.path",
        )  # fmt: skip
        digest = hashlib.sha256(found.read_bytes()).hexdigest()[:16]
        spec = {"path": str(rel), "features": raw.get("features"), "targets": raw.get("targets")}
        spec["sha256"] = digest
        return spec, X, Y, found
    name = raw.get("builtin", "seed")
    if not isinstance(name, str) or name not in datasets.BUILTINS:
        fail("data.builtin", f"unknown dataset {name!r}; choose one of {sorted(datasets.BUILTINS)}")
    X, Y = datasets.builtin(name)
    return {"builtin": name}, X, Y, None
