"""The model family in the CPU kernel (docs/numerics.md): bit for bit the reference
(kernel.reference.train_reference) for every activation x output x bias x scaling x step x
update, float64 and float32, with per-layer learning rates that differ from run to run.

`make test` runs a derandomized hypothesis sample of the variants (each is a kernel of its
own, compiled on first use); the full product is marked slow (`make test-all`)."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runner
from runner.errors import RunnerError
from runner.kernel import codes
from runner.kernel import reference as ref
from runner.plan import params
from runner.run.train import init_weights, run_batch

N, D, HID = 9, 3, 5
R, TILE = 11, 4  # three tiles, the last one partial
EPOCHS = 40

VARIANTS = list(itertools.product(
    ref.ACTIVATIONS, ("linear", "sigmoid"), (False, True), ("standard", "mean-field"),
    ("notebook", "gradient"), ("sequential", "simultaneous"), ("float64", "float32"),
))  # fmt: skip


def data(outputs: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), rng.standard_normal((N, outputs))


def rates(top: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """alpha_hidden, alpha_output per run: log-uniform up to 10**top, different in every
    lane, the largest enough to diverge in many variants."""
    rng = np.random.default_rng(4)
    return 10 ** rng.uniform(-2.5, top, R), 10 ** rng.uniform(-2.5, top, R)


def check_batch(act, output, bias, scaling, step, update, dtype, outputs=2, stop_below=None,
                fastmath=False, tol=None, small=False, top=1.0, diverge_above=None):  # fmt: skip
    """One batch of R runs through the kernel, each run against the reference: exactly,
    or within ``tol`` (relative, for fastmath). ``small``: rates of 0.02 and 0.03 (stable
    runs); ``top``: the largest rates' log10. Returns the runs' status codes."""
    X, Y = data(outputs)
    a_h, a_o = (np.full(R, 0.02), np.full(R, 0.03)) if small else rates(top)
    model = {"activation": act, "bias": bias, "scaling": scaling, "step": step}
    Wh0, Wz0 = init_weights(100 + np.arange(R), D, HID, outputs, (-1.0, 1.0), bias)
    assert Wh0.shape == (D + bias, HID, R) and Wz0.shape == (HID + bias, outputs, R)
    out = run_batch(
        X, Y, Wh0.copy(), Wz0.copy(), np.full(R, 0.1), EPOCHS, output, update,
        stop_below=stop_below, diverge_above=diverge_above, dtype=dtype, fastmath=fastmath,
        tile=TILE, alpha_hidden=a_h, alpha_output=a_o, **model,
    )  # fmt: skip
    for r in range(R):
        want = ref.train_reference(
            X, Y, Wh0[:, :, r], Wz0[:, :, r], 0.1, EPOCHS, output, update, stop_below,
            diverge_above, dtype=dtype, alpha_hidden=a_h[r], alpha_output=a_o[r], **model,
        )  # fmt: skip
        n = int(out.istats[r, codes.EPOCHS_RUN])
        assert n == len(want.loss), (r, n, len(want.loss))
        got = (out.loss[:n, r], out.Wh[:, :, r], out.Wz[:, :, r])
        for g, w in zip(got, (want.loss, want.Wh, want.Wz), strict=True):
            if tol is None:
                assert np.array_equal(g, w, equal_nan=True), r  # bit for bit
            else:
                assert np.max(np.abs(g - w) / np.maximum(np.abs(w), 1e-3)) <= tol, r
        status = int(out.istats[r, codes.STATUS])
        assert (status == codes.DIVERGED) == (want.diverged_epoch is not None)
        assert (status == codes.CONVERGED) == (want.converged_epoch is not None)
    return out.istats[:, codes.STATUS]


@settings(max_examples=4, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(variant=st.sampled_from(VARIANTS), outputs=st.sampled_from([1, 2]))
def test_a_sample_of_variants_is_the_reference_bit_for_bit(variant, outputs):
    check_batch(*variant, outputs=outputs)


@pytest.mark.slow
@pytest.mark.parametrize(("act", "output", "bias", "scaling", "step", "update", "dtype"), VARIANTS)
def test_every_variant_is_the_reference_bit_for_bit(act, output, bias, scaling, step, update,
                                                     dtype):  # fmt: skip
    for outputs in (1, 2):  # one output: the hidden delta's one-pass branch
        check_batch(act, output, bias, scaling, step, update, dtype, outputs=outputs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_runs_that_diverge_and_runs_that_stop_early(dtype):
    variant = ("tanh", "linear", True, "mean-field", "gradient", "simultaneous", dtype)
    status = check_batch(*variant, top=3.0, diverge_above=5.0)
    assert codes.DIVERGED in status and codes.RAN_ALL in status
    status = check_batch(*variant, stop_below=0.9, top=3.0, diverge_above=5.0)
    assert codes.CONVERGED in status and codes.DIVERGED in status


def test_relu_identity_and_sequential_with_a_bias_stop_early():
    status = check_batch("relu", "sigmoid", True, "standard", "notebook", "sequential",
                         "float64", outputs=1, stop_below=0.5)  # fmt: skip
    assert codes.CONVERGED in status
    check_batch("identity", "linear", True, "mean-field", "notebook", "sequential", "float32",
                outputs=1, stop_below=0.5)  # fmt: skip


@pytest.mark.parametrize(
    ("act", "dtype", "tol"),
    [("tanh", "float64", 1e-8),
     pytest.param("relu", "float64", 1e-8, marks=pytest.mark.slow),
     pytest.param("sigmoid", "float64", 1e-8, marks=pytest.mark.slow),
     pytest.param("identity", "float64", 1e-8, marks=pytest.mark.slow),
     pytest.param("tanh", "float32", 1e-3, marks=pytest.mark.slow)],
)  # fmt: skip
def test_fastmath_stays_close_on_stable_runs(act, dtype, tol):
    """Small rates (no run diverges): fastmath's kernel within a relative tol of the
    reference."""
    status = check_batch(act, "linear", True, "mean-field", "gradient", "sequential", dtype,
                         fastmath=True, tol=tol, small=True)  # fmt: skip
    assert (status == codes.RAN_ALL).all()


def test_the_default_model_spelled_out_keeps_its_bytes():
    """alpha_hidden == alpha_output == alpha, standard scaling, the notebook's step: the
    default kernel call's bytes (every folded factor is 1)."""
    X, Y = data(1)
    alpha = np.geomspace(0.01, 0.3, R)
    Wh, Wz = init_weights(np.arange(R), D, HID, 1)
    plain = run_batch(X, Y, Wh.copy(), Wz.copy(), alpha, EPOCHS, tile=TILE)
    spelled = run_batch(X, Y, Wh.copy(), Wz.copy(), alpha, EPOCHS, tile=TILE,
                        activation="sigmoid", bias=False, scaling="standard", step="notebook",
                        alpha_hidden=alpha, alpha_output=alpha)  # fmt: skip
    for a, b in zip((plain.loss, plain.Wh, plain.Wz), (spelled.loss, spelled.Wh, spelled.Wz),
                    strict=True):  # fmt: skip
        assert a.tobytes() == b.tobytes()


def test_train_takes_the_family():
    X, Y = data(1)
    kw = {"activation": "tanh", "bias": True, "scaling": "mean-field", "step": "gradient"}
    res = runner.train(X, Y, alpha=0.5, hidden=HID, seed=7, epochs=60, init=(-1, 1),
                       alpha_hidden=0.3, alpha_output=0.9, **kw)  # fmt: skip
    Wh, Wz = init_weights([7], D, HID, 1, (-1.0, 1.0), True)
    want = ref.train_reference(X, Y, Wh[:, :, 0], Wz[:, :, 0], 0.5, 60, alpha_hidden=0.3,
                               alpha_output=0.9, **kw)  # fmt: skip
    assert np.array_equal(res.loss, want.loss)
    assert np.array_equal(res.Wh, want.Wh) and np.array_equal(res.Wz, want.Wz)


@pytest.mark.parametrize("runs", [3, 40])  # NumPy's draw, and the compiled seeding's
def test_bias_rows_are_drawn_with_the_rest(runs):
    Wh, Wz = init_weights(np.arange(runs), D, HID, 2, (-0.5, 2.0), bias=True)
    for r in range(runs):
        rng = np.random.default_rng(r)
        assert np.array_equal(Wh[:, :, r], rng.uniform(-0.5, 2.0, (D + 1, HID)))
        assert np.array_equal(Wz[:, :, r], rng.uniform(-0.5, 2.0, (HID + 1, 2)))
    plain = init_weights(np.arange(runs), D, HID, 2, (-0.5, 2.0))
    assert plain[0].shape == (D, HID, runs) and plain[1].shape == (HID, 2, runs)


@pytest.mark.parametrize(
    ("kw", "key"),
    [({"activation": "softplus"}, "activation"), ({"scaling": "xavier"}, "scaling"),
     ({"step": "mean"}, "step"), ({"bias": "yes"}, "bias"),
     ({"alpha_hidden": -0.1}, "alpha_hidden"), ({"alpha_output": float("nan")}, "alpha_output")],
)  # fmt: skip
def test_train_refuses_bad_model_values(kw, key):
    X, Y = data(1)
    with pytest.raises(RunnerError) as err:
        runner.train(X, Y, epochs=2, **kw)
    assert key in str(err.value)


def test_weights_of_the_wrong_shape_are_refused():
    X, Y = data(1)
    Wh, Wz = init_weights(np.arange(4), D, HID, 1)
    with pytest.raises(RunnerError, match="do not fit"):
        run_batch(X, Y, Wh, Wz, np.full(4, 0.1), 2, bias=True)


# ----- the family in a sweep -----
SWEEP = {
    "name": "family",
    "data": {"builtin": "seed"},
    "train": {"epochs": 30, "activation": "tanh", "bias": True, "scaling": "mean-field",
              "step": "gradient", "init": [-1.0, 1.0], "alpha_output": 0.7},
    "grid": {"alpha_hidden": [0.05, 0.4], "seed": {"start": 0, "stop": 5}},
    "sweep": {"chunk_runs": 4},
}  # fmt: skip


def assert_runs_are_the_reference(folder, epochs: int, init=(-1.0, 1.0)) -> None:
    """Every run of a results folder: its recorded losses (every epoch) equal the reference
    of its own parameters, taken from its row of ``runs`` (a column absent: the default)."""
    res = runner.load(folder)
    losses = res.losses()
    X, Y = runner.plan.data.builtin("seed")
    for run in res.runs.to_dict("records"):
        p = {k: run.get(k, params.DEFAULTS[k]) for k in params.MODEL}
        p = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in p.items()}
        p["bias"], p["activation"] = bool(p["bias"]), str(p["activation"])
        p["scaling"], p["step"] = str(p["scaling"]), str(p["step"])
        Wh, Wz = init_weights([run["seed"]], 2, 4, 1, init, p["bias"])
        want = ref.train_reference(X, Y, Wh[:, :, 0], Wz[:, :, 0], run["alpha"], epochs, **p)
        mine = losses[losses["run_id"] == run["run_id"]].sort_values("epoch")["loss"]
        assert np.array_equal(mine.to_numpy(), want.loss.astype(np.float32)), run


def test_a_family_sweep_is_the_reference_run_by_run(tmp_path):
    report = runner.sweep(SWEEP, out=tmp_path, jobs=1, progress=False, quiet=True)
    assert report.runs_trained == 10
    res = runner.load(tmp_path / "family")
    runs = res.runs.sort_values("run_id")
    uniform = [c for c in params.COLUMNS if c not in ("init_mean", "init_std", "fold")]
    assert [c for c in runs.columns if c in params.COLUMNS] == uniform
    for col, want in (("activation", "tanh"), ("bias", True), ("scaling", "mean-field"),
                      ("step", "gradient"), ("alpha_output", 0.7)):  # fmt: skip
        assert (runs[col] == want).all(), col
    assert sorted(runs["alpha_hidden"].unique()) == [0.05, 0.4]
    losses = res.losses()
    assert "alpha_hidden" in losses.columns and "activation" not in losses.columns
    assert_runs_are_the_reference(tmp_path / "family", 30)


def test_a_family_sweep_grows_and_samples_the_family(tmp_path):
    folder = tmp_path / "family"
    runner.sweep(SWEEP, out=tmp_path, jobs=1, progress=False, quiet=True)
    before = {p: p.read_bytes() for p in folder.rglob("*.parquet")}
    report = runner.sweep(SWEEP, out=tmp_path, jobs=1, progress=False, quiet=True,
                          overrides=["grid.alpha_hidden=0.05,0.4,1.5"])  # fmt: skip
    assert report.runs_trained == 5 and report.runs_before == 10
    assert all(p.read_bytes() == b for p, b in before.items())
    assert_runs_are_the_reference(folder, 30)
    sampled = {
        "name": "sampled", "data": {"builtin": "seed"},
        "train": {"epochs": 20, "init": [-1.0, 1.0], "scaling": "mean-field"},
        "sample": {"points": 6, "method": "random", "alpha_hidden": {"loguniform": [0.01, 1.0]},
                   "activation": {"choice": ["tanh", "identity"]}},
    }  # fmt: skip
    runner.sweep(sampled, out=tmp_path, jobs=1, progress=False, quiet=True)
    runs = runner.load(tmp_path / "sampled").runs
    assert set(runs["activation"].astype(str)) == {"tanh", "identity"}
    assert "scaling" in runs.columns and not {"step", "alpha_output"} & set(runs.columns)
    assert_runs_are_the_reference(tmp_path / "sampled", 20)


def test_a_default_sweep_has_no_family_columns_and_its_old_hash(tmp_path):
    from runner.plan.spec import spec_from_dict

    plain = {"name": "p", "data": {"builtin": "seed"}, "train": {"epochs": 3}}
    spelled = {**plain, "train": {"epochs": 3, "activation": "sigmoid", "step": "notebook"}}
    a, b = spec_from_dict(plain), spec_from_dict(spelled)
    assert a.hash == b.hash and "activation" not in a.resolved()["train"]
    assert a.model_params == ["diverge_factor"]  # a new spec's divergence rule, not the model
    runner.sweep(plain, out=tmp_path, jobs=1, progress=False, quiet=True)
    cols = set(runner.load(tmp_path / "p").runs.columns)
    assert not cols & {"activation", "bias", "scaling", "step", "alpha_hidden", "alpha_output"}
