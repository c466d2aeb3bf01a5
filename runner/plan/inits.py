"""The three forms of ``init`` in a spec: ``[lo, hi]`` (uniform), ``{normal = [mean, std]}``
and ``{path = "w0.npz"}`` (the same initial weights for every run).

The tables belong in ``[train]``; a ``[grid]`` or a ``[sample]`` varies the numbers of the
form ``[train]`` gives (``init_lo``, ``init_hi`` or ``init_mean``, ``init_std``). A file's
arrays ``Wh`` and ``Wz`` are checked against the data's inputs and outputs and every
``hidden`` and ``bias`` of the sweep; its sha256 goes into sweep.json.
"""

from __future__ import annotations

import hashlib
import itertools
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from runner.errors import RunnerError
from runner.plan import params as P
from runner.plan.chunks import Factor

TABLES = "an init table ({normal = [mean, std]} or {path = ...}) belongs in [train]"
FORMS = {"uniform": "[lo, hi]", "normal": "{normal = [mean, std]}", "path": "{path = ...}"}


def check_listed(key: str, values: list[Any], train: dict[str, Any], fail) -> None:
    """``init`` listed in [grid] or a [sample] choice: pairs only, and only over a uniform
    [train] init. ``fail(message)`` raises, naming the key."""
    if any(isinstance(v, dict) for v in values):
        fail(f"{TABLES}; here vary init_mean, init_std (or init_lo, init_hi) instead")
    kind = P.init_kind(train["init"])
    if kind != "uniform":
        fail(f"lists [lo, hi] pairs, but train.init is {FORMS[kind]}")


def check_half(key: str, train: dict[str, Any], others: dict[str, Any], fail) -> None:
    """A half (init_std, ...) in [grid] or [sample] must belong to [train]'s form and not
    come with ``init`` itself (``others``: the table's keys)."""
    if "init" in others:
        fail(f"give either init or its numbers ({key}, ...), not both")
    kind, want = P.init_kind(train["init"]), P.HALF_KIND[key]
    if kind != want:
        fail(f"varies a {want} init, but train.init is {FORMS[kind]}; give train.init = "
             f"{FORMS[want]}")  # fmt: skip


def grid_axes(grid_raw: dict[str, Any], train: dict[str, Any], axis, fail
              ) -> tuple[dict[str, Any], dict[str, Factor]]:  # fmt: skip
    """[grid]'s ``init`` and init numbers -> their JSON forms and the ``init`` factor.

    ``axis(key, value, fail)`` reads one axis (spec._axis); ``fail(key, msg)`` raises."""
    forms: dict[str, Any] = {}
    factors: dict[str, Factor] = {}
    halves: dict[str, np.ndarray] = {}
    for key, value in grid_raw.items():
        at = lambda m, k=key: fail(f"grid.{k}", m)  # noqa: E731
        if key == "init":
            if isinstance(value, list):
                check_listed(key, value, train, at)
            forms[key], factors[key] = axis(key, value, at)
        elif key in P.HALVES:
            check_half(key, train, grid_raw, at)
            forms[key], half = axis(key, value, at)
            halves[key] = half[key]
    if halves:
        factors["init"] = grid_factor(train, halves, fail)
    return forms, factors


def grid_factor(train: dict[str, Any], halves: dict[str, np.ndarray], fail) -> Factor:
    """The ``init`` factor of [grid] axes over its numbers: their product in column order
    (the last fastest), the other numbers from [train]."""
    names = [c for c, _ in P.BY_NAME["init"].columns if c in halves]
    rows = list(itertools.product(*(halves[c].tolist() for c in names)))
    fixed = dict(zip((c for c, _ in P.BY_NAME["init"].columns), P.init_row(train["init"]),
                     strict=True))  # fmt: skip
    factor = {c: np.array([r[names.index(c)] for r in rows] if c in names else
                          [fixed[c]] * len(rows), dtype=np.float64)
              for c, _ in P.BY_NAME["init"].columns}  # fmt: skip
    if "init_lo" in names or "init_hi" in names:
        bad = factor["init_lo"] >= factor["init_hi"]
        if bad.any():
            key = "init_hi" if "init_hi" in names else "init_lo"
            i = int(np.argmax(bad))
            fail(f"grid.{key}", f"needs init_lo < init_hi at every point, got lo "
                 f"{factor['init_lo'][i]} and hi {factor['init_hi'][i]}")  # fmt: skip
    return factor


def read_weights(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Wh, Wz (float64) and the sha256 of an .npz file; RunnerError (reason only) if the
    file cannot be read or lacks an array."""
    try:
        raw = path.read_bytes()
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("Wh", "Wz") if k not in f.files]
            if missing:
                raise RunnerError(f"{path.name} has no array {missing[0]} (found "
                                  f"{', '.join(f.files) or 'none'})")  # fmt: skip
            Wh, Wz = f["Wh"], f["Wz"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if isinstance(exc, RunnerError):
            raise
        raise RunnerError(f"cannot read {path.name} as .npz ({exc.__class__.__name__})") from None
    for name, a in (("Wh", Wh), ("Wz", Wz)):
        if a.ndim != 2 or a.dtype.kind not in "iuf" or not np.isfinite(a).all():
            raise RunnerError(f"{path.name}: {name} must be a 2-D array of finite numbers, "
                              f"got {a.dtype} of shape {a.shape}")  # fmt: skip
    return Wh.astype(np.float64), Wz.astype(np.float64), hashlib.sha256(raw).hexdigest()


def check_shapes(name: str, Wh: np.ndarray, Wz: np.ndarray, inputs: int, outputs: int,
                 hiddens: set, biases: set) -> None:  # fmt: skip
    """RunnerError (reason only) unless the weights fit every (hidden, bias) of the sweep."""
    for hidden, bias in itertools.product(sorted(hiddens), sorted(biases)):
        want = ((inputs + bias, hidden), (hidden + bias, outputs))
        if (Wh.shape, Wz.shape) != want:
            fit = f"{inputs} inputs, hidden {hidden}, {outputs} outputs, " + (
                "bias" if bias else "no bias"
            )
            many = " (the sweep has several)" if len(hiddens) * len(biases) > 1 else ""
            raise RunnerError(f"{name}: Wh {Wh.shape} and Wz {Wz.shape} do not fit {fit}"
                              f"{many}: they need Wh {want[0]} and Wz {want[1]}")  # fmt: skip


def resolve(train: dict[str, Any], values, X: np.ndarray, Y: np.ndarray, base: Path | None,
            fail) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """For ``init = {path = ...}`` in [train]: read and check the file, record its sha256 in
    ``train["init"]``, and return (Wh, Wz); None for the other forms.

    The path is relative to the spec's folder (``base``; None: the current folder).
    ``values(key)``: the sweep's values of ``hidden`` and ``bias``."""
    init = train["init"]
    if P.init_kind(init) != "path":
        return None
    rel = Path(init["path"])
    path = rel if base is None or rel.is_absolute() else base / rel
    if not path.is_file():
        fail("train.init", f"init file not found ({path})")
    try:
        Wh, Wz, digest = read_weights(path)
        check_shapes(init["path"], Wh, Wz, X.shape[1], Y.shape[1], values("hidden"),
                     values("bias"))  # fmt: skip
    except RunnerError as exc:
        fail("train.init", exc.reason)
    train["init"] = {"path": init["path"], "sha256": digest}
    return Wh, Wz
