"""[record] weights: each run's final weights in weights/, and load().weights / .predict,
whose forward pass is the kernel's exactly (docs/results.md)."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import ROOT, assert_same_results, env, sweep_cmd, write_spec

import runner
from runner.errors import RunnerError
from runner.kernel import reference as ref
from runner.plan.spec import spec_from_dict
from runner.results import store
from runner.results.status import status

EPOCHS = 25
DATA = {"random": {"samples": 12, "inputs": 3, "outputs": 2, "seed": 4}}
# every value of each model key at least once (activation, bias, scaling, output, dtype)
VARIANTS = {
    "sigmoid": {},
    "tanh-bias-meanfield": {"activation": "tanh", "bias": True, "scaling": "mean-field",
                            "step": "gradient"},
    "relu-bias-sigmoid-f32": {"activation": "relu", "bias": True, "output": "sigmoid",
                              "dtype": "float32"},
    "identity-meanfield-f32": {"activation": "identity", "scaling": "mean-field",
                               "dtype": "float32"},
}  # fmt: skip
VARIANTS_DEFAULTS = {"output": "linear", "dtype": "float64", "activation": "sigmoid",
                     "bias": False, "scaling": "standard"}  # fmt: skip


def spec_dict(train: dict, name: str = "w", epochs: int = EPOCHS, record: dict | None = None,
              data: dict | None = None) -> dict:  # fmt: skip
    return {"name": name, "data": data or DATA,
            "train": {"epochs": epochs, "hidden": 3, "init": [-0.5, 0.5], **train},
            "grid": {"alpha": [0.02, 0.1], "seed": [0, 1, 2]},
            "record": record or {}, "sweep": {"chunk_runs": 4}}  # fmt: skip


def sweep(spec, out: Path, **kw):
    return runner.sweep(spec, out=out, jobs=1, quiet=True, progress=False, **kw)


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, tmp_path_factory):
    """A variant swept for EPOCHS epochs (weights kept) and for one epoch more (every
    epoch's loss kept, in float64)."""
    root = tmp_path_factory.mktemp(request.param)
    train = VARIANTS[request.param]
    short = spec_dict(train)
    sweep(short, root / "short")
    longer = spec_dict(train, epochs=EPOCHS + 1, record={"every": 1, "loss_dtype": "float64"})
    sweep(longer, root / "long")
    return short, runner.load(root / "short" / "w"), runner.load(root / "long" / "w")


def mse(Y: np.ndarray, Z: np.ndarray, dtype: str) -> float:
    """The kernel's loss: mean squared error in the training dtype, summed in order."""
    f = np.dtype(dtype)
    return ref.mean((np.asarray(Y, f) - np.asarray(Z, f)) ** 2)


def test_the_loss_of_the_stored_weights_is_the_next_epochs_loss(pair):
    """predict on the training rows, scored like the kernel, gives the loss that a sweep
    one epoch longer records at its last epoch: exactly."""
    spec, short, long = pair
    s = spec_from_dict(spec)
    runs = short.runs
    assert (runs["epochs_run"] == EPOCHS).all()
    last = long.losses(filters=[("epoch", "==", EPOCHS + 1)]).set_index("run_id")["loss"]
    assert len(last) == len(runs)
    dtype = spec["train"].get("dtype", "float64")
    for r in runs["run_id"]:
        assert mse(s.Y, short.predict(r, s.X), dtype) == last[r], r


def test_predict_on_new_rows_is_the_reference_forward_pass(pair):
    """On rows the runs never saw, predict's outputs score as the reference's own
    forward pass of the stored weights (train_reference's loss of its first epoch)."""
    spec, short, _ = pair
    train = {**VARIANTS_DEFAULTS, **spec["train"]}
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    for r in short.runs["run_id"]:
        Wh, Wz = short.weights(r)
        Z = short.predict(r, X)
        assert Z.shape == (9, 2) and Z.dtype == np.float64
        want = ref.train_reference(
            X, Y, Wh, Wz, 0.1, 1, train["output"], dtype=train["dtype"],
            activation=train["activation"], bias=train["bias"], scaling=train["scaling"],
        ).loss[0]  # fmt: skip
        assert mse(Y, Z, train["dtype"]) == want, r


def test_stored_weights_are_runner_trains(pair):
    """Every run's stored weights equal runner.train's final weights for its parameters,
    bit for bit, with their shapes (the bias row last)."""
    spec, short, _ = pair
    s = spec_from_dict(spec)
    train = {k: v for k, v in spec["train"].items() if k != "epochs"}
    bias = bool(train.get("bias", False))
    for row in short.runs.itertuples():
        Wh, Wz = short.weights(row.run_id)
        assert Wh.shape == (3 + bias, 3) and Wz.shape == (3 + bias, 2)
        assert Wh.dtype == Wz.dtype == np.float64
        want = runner.train(s.X, s.Y, epochs=EPOCHS, alpha=row.alpha, seed=row.seed, **train)
        assert np.array_equal(Wh, want.Wh) and np.array_equal(Wz, want.Wz), row.run_id


def test_the_weights_table(tmp_path):
    """weights/chunk-NNNNNN.parquet: run_id, Wh and Wz flattened in C order, their shapes."""
    sweep(spec_dict({"bias": True}), tmp_path)
    folder = tmp_path / "w"
    table = pq.read_table(folder / "weights" / "chunk-000001.parquet")
    assert table.column_names == ["run_id", "Wh", "Wh_shape", "Wz", "Wz_shape"]
    assert str(table.schema.field("Wh").type) == "list<element: double>"
    assert str(table.schema.field("Wh_shape").type) == "list<element: int32>"
    assert table.column("run_id").to_pylist() == [3, 4, 5]
    res = runner.load(folder)
    row = table.slice(2, 1).to_pylist()[0]
    Wh, Wz = res.weights(5)
    assert row["Wh_shape"] == [4, 3] and row["Wz_shape"] == [4, 2]
    assert row["Wh"] == Wh.ravel().tolist() and row["Wz"] == Wz.ravel().tolist()
    with pytest.raises(RunnerError, match="no run 6"):
        res.weights(6)
    with pytest.raises(RunnerError, match=r"rows of 3 features"):
        res.predict(0, np.zeros((2, 4)))


def test_predict_applies_and_inverts_standardize(tmp_path):
    """[data] standardize: predict standardises raw rows with sweep.json's statistics (the
    same bits as the rows trained on) and inverts the targets' on the outputs; the
    loss of the stored weights is the next epoch's, on the standardised scale."""
    data = {**DATA, "standardize": True}
    spec = spec_dict({"activation": "tanh"}, data=data)
    sweep(spec, tmp_path / "short")
    long = spec_dict({"activation": "tanh"}, data=data, epochs=EPOCHS + 1,
                     record={"every": 1, "loss_dtype": "float64"})  # fmt: skip
    sweep(long, tmp_path / "long")
    res, nxt = runner.load(tmp_path / "short" / "w"), runner.load(tmp_path / "long" / "w")
    raw = spec_from_dict(spec_dict({}))  # the same rows, not standardised
    s = spec_from_dict(spec)  # as trained on
    scaling = res.spec["data"]["scaling"]
    last = nxt.losses(filters=[("epoch", "==", EPOCHS + 1)]).set_index("run_id")["loss"]
    from runner.results.weights import forward

    for r in res.runs["run_id"]:
        Wh, Wz = res.weights(r)
        Z = forward(s.X, Wh, Wz, activation="tanh")  # the standardised outputs
        assert mse(s.Y, Z, "float64") == last[r]
        want = Z * np.asarray(scaling["y_scale"]) + np.asarray(scaling["y_mean"])
        assert np.array_equal(res.predict(r, raw.X), want)


def test_none_stores_no_weights(tmp_path):
    sweep(spec_dict({}, record={"weights": "none"}), tmp_path / "a")
    sweep(spec_dict({}, record={"every": 0}), tmp_path / "b")  # every = 0: none by default
    for folder in (tmp_path / "a" / "w", tmp_path / "b" / "w"):
        res = runner.load(folder)
        assert not (folder / "weights").exists() and "weights" not in res.spec["record"]
        with pytest.raises(RunnerError, match="keeps no weights"):
            res.weights(0)
    sweep(spec_dict({}, record={"every": 0, "weights": "final"}), tmp_path / "c")
    res = runner.load(tmp_path / "c" / "w")
    assert res.spec["record"]["weights"] == "final" and len(res.losses()) == 0
    assert res.weights(5)[0].shape == (3, 3)
    with pytest.raises(RunnerError, match=r"record\.weights: must be 'final' or 'none'"):
        spec_from_dict(spec_dict({}, record={"weights": "all"}))


def test_a_resumed_sweep_rewrites_lost_weights(tmp_path):
    """A chunk whose runs file is lost is trained again and its weights rewritten; one
    whose weights file is lost or damaged is damaged (status says so) and trained again."""
    spec = spec_dict({})
    sweep(spec, tmp_path)
    folder = tmp_path / "w"
    weights = folder / "weights" / "chunk-000001.parquet"
    before = pq.read_table(weights)
    (folder / "runs" / "chunk-000001.parquet").unlink()
    weights.unlink()
    assert sweep(spec, tmp_path).chunks_run == 1
    assert pq.read_table(weights).equals(before)
    for damage in ("remove", "truncate"):
        if damage == "remove":
            weights.unlink()
        else:
            weights.write_bytes(b"PAR1")
        st = status(folder)
        assert not st.complete and "weights/chunk-000001.parquet" in st.bad[0]
        assert sweep(spec, tmp_path).chunks_run == 1
        assert pq.read_table(weights).equals(before) and status(folder).complete


def test_an_older_folder_keeps_no_weights(tmp_path):
    """A folder begun before weights were stored (tests/golden/v2) has none, says so, and
    resumes without them; a spec that names [record] weights = "final" is another sweep."""
    golden = tmp_path / "v2"
    shutil.copytree(ROOT / "tests" / "golden" / "v2", golden)
    toml = ROOT / "tests" / "golden" / "v2-sweep.toml"
    with pytest.raises(RunnerError, match="keeps no weights"):
        runner.load(golden).weights(0)
    (golden / "runs" / "chunk-000002.parquet").unlink()
    assert sweep(toml, tmp_path).chunks_run == 1
    assert not (golden / "weights").exists()
    with pytest.raises(RunnerError, match=r"record\.weights .*absent.* -> .*final"):
        sweep(toml, tmp_path, overrides=["record.weights=final"])


def test_reading_weights_and_predicting_load_no_numba(tmp_path):
    sweep(spec_dict({"activation": "relu"}), tmp_path)
    code = (f"import sys, json, runner\nres = runner.load({str(tmp_path / 'w')!r})\n"
            "Z = res.predict(3, [[0.5, 1.0, -1.0]])\n"
            "print(json.dumps([Z.shape[1], sorted({m.split('.')[0] for m in sys.modules}"
            " & {'numba', 'llvmlite'})]))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(),
                       cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [2, []]


# make test kills with the weights half-written; in place, they are slow
@pytest.mark.parametrize("point", ["weights-tmp", pytest.param("weights", marks=pytest.mark.slow)])
def test_a_sweep_killed_while_writing_weights_resumes(tmp_path, point):
    """SIGKILL with a chunk's weights half-written or in place (its runs file not yet):
    the chunk is not done; the same command finishes the sweep, equal to an uninterrupted
    one bit for bit, weights included, and leaves no temporary file."""
    spec = write_spec(tmp_path)  # 36 runs in 8 chunks
    sweep(spec, tmp_path / "base")
    out = tmp_path / "out"
    proc = subprocess.run(sweep_cmd(spec, out), env=env(RUNNER_TEST_KILL=f"2:{point}"),
                          start_new_session=True, capture_output=True, timeout=300)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL
    name = store.chunk_name(2)
    folder, base = out / "small", tmp_path / "base" / "small"
    assert (folder / "weights" / name).exists() == (point == "weights")
    assert not (folder / "runs" / name).exists()
    r = subprocess.run(sweep_cmd(spec, out), env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_same_results(folder, base)
    assert sorted(os.listdir(folder / "weights")) == sorted(os.listdir(base / "weights"))
    for f in os.listdir(base / "weights"):
        assert pq.read_table(folder / "weights" / f).equals(pq.read_table(base / "weights" / f))


def test_a_grown_sweep_finds_each_runs_weights(tmp_path):
    """Runs of a later layer (a grown sweep) are found in their chunks: every run's
    stored weights are runner.train's for its alpha and seed."""
    spec = spec_dict({})
    sweep(spec, tmp_path)
    sweep(spec, tmp_path, overrides=["grid.seed=[0, 1, 2, 3, 4]", "grid.alpha=[0.02, 0.3]"])
    res = runner.load(tmp_path / "w")
    s = spec_from_dict(spec)
    assert len(res.runs) == 13 and len(res.meta["layers"]) == 2  # 0.1: kept
    for row in res.runs.itertuples():
        want = runner.train(s.X, s.Y, epochs=EPOCHS, hidden=3, init=[-0.5, 0.5],
                            alpha=row.alpha, seed=row.seed)  # fmt: skip
        Wh, Wz = res.weights(row.run_id)
        assert np.array_equal(Wh, want.Wh) and np.array_equal(Wz, want.Wz), row.run_id
