"""A sweep written by the second round's main (tests/golden/v2, commit 6dfa63e) stays readable,
resumable and growable, and today's code writes the same files for the same spec."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import runner

GOLDEN = Path(__file__).parent / "golden"
SPEC = GOLDEN / "v2-sweep.toml"


def same_pyarrow() -> bool:
    meta = json.loads((GOLDEN / "v2" / "sweep.json").read_text())
    return meta["versions"]["pyarrow"] == pa.__version__


def assert_same_file(a: Path, b: Path) -> None:
    ta, tb = pq.read_table(a), pq.read_table(b)
    assert ta.schema.equals(tb.schema, check_metadata=True), a.name
    assert ta.equals(tb), a.name
    if same_pyarrow():  # the file bytes name the pyarrow that wrote them
        assert a.read_bytes() == b.read_bytes(), a.name


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet"))


@pytest.fixture
def golden(tmp_path) -> Path:
    folder = tmp_path / "v2"
    shutil.copytree(GOLDEN / "v2", folder)
    return folder


STATS = ["first_loss", "tail_mean"]  # runs columns the second round did not keep


def test_todays_code_writes_the_golden_files(tmp_path):
    """The same losses files; the same runs files but for two new columns, which hold the
    runs' first loss (the losses files hold it rounded to float32) and the mean of their
    last 20 losses (runner.kernel.reference checks its value: tests/test_kernel.py); and
    now a weights file per chunk (tests/test_weights.py). With the divergence rule of the
    second round: only a non-finite loss diverges."""
    report = runner.sweep(SPEC, out=tmp_path, jobs=1, progress=False, quiet=True,
                          overrides=["train.diverge_factor=inf"])  # fmt: skip
    assert report.runs_trained == 144
    new = files(tmp_path / "v2")
    assert [n for n in new if not n.startswith("weights/")] == files(GOLDEN / "v2")
    assert [n for n in new if n.startswith("weights/")] == [
        n.replace("runs/", "weights/") for n in files(GOLDEN / "v2") if n.startswith("runs/")
    ]
    for name in files(GOLDEN / "v2"):
        if name.startswith("losses/"):
            assert_same_file(tmp_path / "v2" / name, GOLDEN / "v2" / name)
            continue
        new, old = pq.read_table(tmp_path / "v2" / name), pq.read_table(GOLDEN / "v2" / name)
        assert new.drop_columns(STATS).equals(old), name
        assert new.schema.metadata == old.schema.metadata, name
    res = runner.load(tmp_path / "v2")
    losses = res.losses().sort_values(["run_id", "epoch"])
    first = losses.groupby("run_id")["loss"].first()
    assert (res.runs.set_index("run_id")["first_loss"].astype("float32") == first).all()
    assert res.spec["record"] == {"every": 3, "loss_dtype": "float32", "tail": 20,
                                  "weights": "final"}  # fmt: skip
    ok = res.runs[~res.runs["diverged"]]  # (every = 3: the tail's losses are not all kept)
    assert (ok["min_loss"] <= ok["tail_mean"]).all() and np.isfinite(ok["tail_mean"]).all()
    assert (ok["tail_mean"] < ok["first_loss"]).mean() > 0.5


def test_the_golden_folder_loads_and_is_complete(golden):
    report = runner.sweep(SPEC, out=golden.parent, jobs=1, progress=False, quiet=True)
    assert report.runs_trained == 0 and report.complete
    res = runner.load(golden)
    assert len(res.runs) == 144
    assert int(res.runs["diverged"].sum()) == 24


def test_the_golden_folder_resumes(golden):
    lost = ["losses/chunk-000003.parquet", "runs/chunk-000003.parquet"]
    for name in lost:
        (golden / name).unlink()
    report = runner.sweep(SPEC, out=golden.parent, jobs=1, progress=False, quiet=True)
    assert report.chunks_run == 1
    for name in files(GOLDEN / "v2"):
        assert_same_file(golden / name, GOLDEN / "v2" / name)


def test_the_golden_folder_grows(golden):
    before = {name: (golden / name).read_bytes() for name in files(golden)}
    report = runner.sweep(
        SPEC, out=golden.parent, jobs=1, progress=False, quiet=True,
        overrides=["grid.seed={start = 0, stop = 16}"],
    )  # fmt: skip
    assert report.runs_trained == 48 and report.runs_before == 144
    for name, data in before.items():
        assert (golden / name).read_bytes() == data, name
    res = runner.load(golden)
    assert sorted(res.runs["seed"].unique()) == list(range(16))
    # the grown layer keeps the sweep's rules: no new columns, only non-finite diverges
    grown = json.loads((golden / "grown" / "0001.json").read_text())["spec"]
    assert "diverge_factor" not in grown["train"] and "tail" not in grown["record"]
    assert "diverge_factor" not in res.runs and "tail_mean" not in res.runs
