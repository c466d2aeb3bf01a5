"""``runner bench --against REV``: this checkout's kernel against another commit's, built
side by side in one run, so that "no shape slower" is measured, not assumed.

REV is checked out into a temporary ``git worktree``; each (shape, mode) is timed in a
fresh process per tree, pinned to one core, by the same script (``TIMING``), which
imports ``run_batch`` from whichever layout the tree has. Both trees train the same
data, weights and rate; in exact modes the two must give the same losses, bit for bit.
The two trees take turns for ``ROUNDS`` rounds, each starting with the other tree, and
the ratio is the median of the rounds' ratios: on a shared machine one process's median
can move by half (measured), a drift that alternation cancels.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from runner.bench import harness, peers
from runner.bench.harness import BUDGET_S, QUICK_SHAPES, SHAPES, _epochs, _runs, shape_key
from runner.bench.peers import MODES, mode_name
from runner.bench.tables import old_figures, with_old

ROOT = Path(__file__).resolve().parents[2]
SLOWER = 1.05  # new / old above this is "slower": medians on a shared machine move ~5%
ROUNDS = {False: 3, True: 2}  # turns of old and new per (shape, mode): full, quick

TIMING = """
import json, os, sys, time
import numpy as np
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
try:
    from runner.run.train import init_weights, run_batch
except ImportError:  # the flat layout before runner/run/
    from runner.train import init_weights, run_batch
a = json.loads(sys.argv[1])
d = np.load(a["data"])
X, Y = d["X"], d["Y"]
kw = {"dtype": a["dtype"], "fastmath": a["fastmath"]}
Wh0, Wz0 = init_weights(range(a["runs"]), X.shape[1], a["hidden"], 1)
alpha = np.full(a["runs"], a["alpha"])
check = run_batch(X, Y, Wh0[..., :2].copy(), Wz0[..., :2].copy(), alpha[:2], 50,
                  loss_dtype=np.float64, **kw).loss
def call():
    run_batch(X, Y, Wh0.copy(), Wz0.copy(), alpha, a["epochs"], loss_dtype=np.float32, **kw)
call()
t0 = time.perf_counter(); call(); once = time.perf_counter() - t0
calls = max(1, round(a["budget"] / once))
times = []
for _ in range(a["repeats"]):
    t0 = time.perf_counter()
    for _ in range(calls):
        call()
    times.append((time.perf_counter() - t0) / calls)
print(json.dumps({"times": times, "check": check.tolist()}))
"""


def worktree(rev: str, into: Path) -> Path:
    """REV checked out (detached) at ``into``; RuntimeError if git cannot."""
    r = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"git worktree add {rev}: {r.stderr.strip()[:200]}")
    return into


def _time(tree: Path, args: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if tree != ROOT:  # the other commit's kernels: a cache of their own
        env["NUMBA_CACHE_DIR"] = str(tree / ".numba")
    r = subprocess.run([sys.executable, "-c", TIMING, json.dumps(args)], capture_output=True,
                       text=True, env=env, cwd=tree)  # fmt: skip
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {r.returncode}"}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    work = args["runs"] * args["epochs"]
    return {"ns_per_epoch_run": statistics.median(out["times"]) / work * 1e9,
            "check": np.array(out["check"])}  # fmt: skip


@contextlib.contextmanager
def checked_out(rev: str) -> Iterator[Path]:
    """REV in a temporary git worktree for the block; RuntimeError if git cannot."""
    with tempfile.TemporaryDirectory() as tmp:
        old = worktree(rev, Path(tmp) / "old")
        try:
            yield old
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           capture_output=True)  # fmt: skip


def run(rev: str, quick: bool = False, log: Callable[[str], None] | None = None,
        shapes: tuple | None = None, modes: tuple | None = None,
        old: Path | None = None) -> dict:  # fmt: skip
    """Every (shape, mode): ns per epoch-run of REV's kernel and this one's, their ratio,
    whether this one is not slower, and (exact modes) whether their losses are equal.
    ``old``: REV already checked out there (``checked_out``)."""
    if old is None:
        with checked_out(rev) as tree:
            return run(rev, quick, log, shapes, modes, tree)
    say = log or (lambda msg: None)
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes or (QUICK_SHAPES if quick else SHAPES):
            X, Y = peers.data(shape)
            data = Path(tmp) / f"{shape_key(shape)}.npz"
            np.savez(data, X=X, Y=Y)
            for dtype, fastmath in modes or MODES:
                key = f"{shape_key(shape)} {mode_name(dtype, fastmath)}"
                say(f"against {rev}: {key}")
                args = {"data": str(data), "dtype": dtype, "fastmath": fastmath,
                        "hidden": shape[2], "alpha": peers.alpha(shape),
                        "runs": _runs("runner", shape, quick, False),
                        "epochs": _epochs(shape, quick, False),
                        "budget": BUDGET_S[quick], "repeats": 3 if quick else 5}  # fmt: skip
                rows[key] = _row(*_turns(old, args, ROUNDS[quick]), fastmath)
    timed = [r for r in rows.values() if "ratio" in r]
    return {"rev": rev, "quick": quick, "rows": rows,
            "holds": bool(timed) and all(r["not_slower"] for r in timed) and
            all(r.get("same_losses", True) for r in timed)}  # fmt: skip


def run_against(rev: str, shapes: bool = False, quick: bool = False, log=None) -> dict[str, Any]:
    """``run`` (``run_shapes`` with ``shapes``) with REV's kernel timed beside this one's
    at each of its (shape, mode) pairs, in a worktree, and (``run``) REV's own ``runner
    sweep`` end to end; each figure then has REV's value beside this checkout's."""
    say = log or (lambda msg: None)
    result = (harness.run_shapes if shapes else harness.run)(quick=quick, log=log)
    grid = tuple(tuple(e["shape"]) for e in result["shapes"].values()) if shapes else tuple(
        peers.PROBLEMS[p] for p in result["kernel"])  # fmt: skip
    with checked_out(rev) as tree:
        result["against"] = run(rev, quick, log, shapes=grid, old=tree)
        if not shapes:
            say(f"end to end: runner at {rev}")
            result["e2e_old"] = harness.spawn(["e2e", "runner"], quick, tree)
    result["figures"] = with_old(result["figures"], old_figures(result, shapes))
    return result


def _turns(old: Path, args: dict[str, Any], rounds: int) -> tuple[list, list]:
    """REV's and this tree's timings, ``rounds`` of each, the trees taking turns to go
    first."""
    olds, news = [], []
    for i in range(rounds):
        order = (old, ROOT) if i % 2 == 0 else (ROOT, old)
        got = [_time(tree, args) for tree in order]
        olds.append(got[order.index(old)])
        news.append(got[order.index(ROOT)])
    return olds, news


def _row(olds: list[dict], news: list[dict], fastmath: bool) -> dict[str, Any]:
    """One (shape, mode): the median time of each tree and the median of the rounds'
    ratios (new over old); with exact modes, whether every round's losses agree."""
    for t in olds + news:
        if "error" in t:
            return {"error": t["error"]}
    pairs = list(zip(olds, news, strict=True))
    ratios = [n["ns_per_epoch_run"] / o["ns_per_epoch_run"] for o, n in pairs]
    ratio = statistics.median(ratios)
    row = {"old_ns": statistics.median(o["ns_per_epoch_run"] for o in olds),
           "new_ns": statistics.median(n["ns_per_epoch_run"] for n in news),
           "ratio": ratio, "not_slower": ratio <= SLOWER, "rounds": len(ratios)}  # fmt: skip
    if not fastmath:
        row["same_losses"] = all(np.array_equal(o["check"], n["check"], equal_nan=True)
                                 for o, n in pairs)  # fmt: skip
    return row


def table(result: dict[str, Any]) -> str:
    lines = [f"This checkout's kernel against {result['rev']}'s, one core, ns per epoch-run "
             "(median of each tree's times; new / old: the median of the rounds' ratios, the "
             "trees taking turns; 'not slower' is new / old <= 1.05):", "",
             "| shape, mode | old | new | new / old | not slower | same losses |",
             "|---|---:|---:|---:|---|---|"]  # fmt: skip
    for key, r in result["rows"].items():
        if "error" in r:
            lines.append(f"| {key} | {r['error']} | | | | |")
            continue
        same = {True: "yes", False: "**no**", None: "(fastmath)"}[r.get("same_losses")]
        lines.append(f"| {key} | {r['old_ns']:,.1f} | {r['new_ns']:,.1f} | {r['ratio']:.2f} "
                     f"| {'yes' if r['not_slower'] else '**no**'} | {same} |")  # fmt: skip
    lines += ["", f"No (shape, mode) slower than {result['rev']}, exact losses equal: "
              f"{'holds' if result['holds'] else 'no'}"]  # fmt: skip
    return "\n".join(lines)
