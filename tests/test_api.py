"""runner.train's validation and the seeded initial weights."""

import subprocess
import sys

import numpy as np
import pytest
from joblib import Parallel, delayed

import runner
from runner.kernel.reference import init_weights as ref_init
from runner.run.train import init_weights

X = [[1, 1], [1, 2], [2, 1], [2, 2]]
Y = [[0], [1], [2], [3]]


def first_weights(seed):
    Wh, Wz = init_weights([seed], 2, 4, 1)
    return Wh[:, :, 0].tolist(), Wz[:, :, 0].tolist()


def test_same_seed_same_weights_in_parent_fresh_process_and_joblib_worker():
    parent = [first_weights(s) for s in (0, 1, 12345)]
    code = (
        "import json; from runner.run.train import init_weights;"
        "print(json.dumps([[init_weights([s],2,4,1)[0][:,:,0].tolist(),"
        "init_weights([s],2,4,1)[1][:,:,0].tolist()] for s in (0,1,12345)]))"
    )
    import json

    fresh = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    workers = Parallel(n_jobs=2, backend="loky")(delayed(first_weights)(s) for s in (0, 1, 12345))
    assert [list(p) for p in parent] == [list(f) for f in fresh] == [list(w) for w in workers]
    # and they are the documented recipe: default_rng(seed), Wh then Wz
    Wh, Wz = ref_init(1, 2, 4, 1)
    assert parent[1] == (Wh.tolist(), Wz.tolist())
    assert parent[0] != parent[1]


def test_batch_weights_equal_single_run_weights():
    Wh, Wz = init_weights([5, 6, 7], 3, 2, 2, (-0.5, 0.5))
    for r, s in enumerate((5, 6, 7)):
        wh, wz = ref_init(s, 3, 2, 2, (-0.5, 0.5))
        np.testing.assert_array_equal(Wh[:, :, r], wh)
        np.testing.assert_array_equal(Wz[:, :, r], wz)


def test_train_returns_documented_fields():
    res = runner.train(X, Y, alpha=0.1, hidden=3, seed=2, epochs=50)
    assert res.loss.dtype == np.float64 and res.loss.shape == (50,)
    assert res.Wh.shape == (2, 3) and res.Wz.shape == (3, 1)
    assert res.diverged_epoch is None and res.epochs_run == 50
    assert res.loss[-1] < res.loss[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": -1.0}, "alpha"),
        ({"hidden": 0}, "hidden"),
        ({"hidden": 2.5}, "hidden"),
        ({"epochs": 0}, "epochs"),
        ({"seed": -1}, "seed"),
        ({"output": "relu"}, "output"),
        ({"update": "async"}, "update"),
        ({"init": (1.0, 0.0)}, "init"),
        ({"init": (0.0,)}, "init"),
        ({"stop_below": -1.0}, "stop_below"),
        ({"diverge_above": 0}, "diverge_above"),
    ],
)
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        runner.train(X, Y, **kwargs)


@pytest.mark.parametrize(
    ("Xb", "Yb", "message"),
    [
        ([[1, 2], [3, 4]], [[1]], "rows"),
        ([[1, float("nan")]], [[1]], "NaN"),
        ([[1, float("inf")]], [[1]], "NaN or infinite"),
        ([["a", "b"]], [[1]], "numeric"),
        (np.zeros((0, 2)), np.zeros((0, 1)), "empty"),
        (np.zeros((2, 2, 2)), [[1], [2]], "2-D"),
    ],
)
def test_bad_data_raises_value_error(Xb, Yb, message):
    with pytest.raises(ValueError, match=message):
        runner.train(Xb, Yb)


def test_one_dimensional_targets_are_a_column():
    res = runner.train(X, [0, 1, 2, 3], epochs=5)
    assert res.Wz.shape == (4, 1)


def test_readme_train_example_runs(capsys):
    from helpers import ROOT

    text = (ROOT / "README.md").read_text()
    section = text.split("## Train one network", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "runner.train(" in code
    assert len(code.strip().splitlines()) <= 6
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert float(printed[0]) < 0.5  # the notebook's run learns
    assert printed[1] == "None"


def test_run_batch_and_run_batch_cuda_share_one_signature():
    import inspect

    from runner.run.cuda import run_batch_cuda
    from runner.run.train import run_batch

    assert inspect.signature(run_batch_cuda) == inspect.signature(run_batch)
