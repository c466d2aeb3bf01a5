"""One rule per parameter: runner.train and the spec refuse the same values with the same words."""

import math

import numpy as np
import pytest

import runner
from runner.errors import RunnerError
from runner.plan.spec import build_spec

X = [[1, 1], [1, 2], [2, 1], [2, 2]]
Y = [[0], [1], [2], [3]]

BAD = [
    ("alpha", -0.1),
    ("alpha", math.nan),
    ("alpha", math.inf),
    ("alpha", True),
    ("hidden", 0),
    ("hidden", 2.5),
    ("hidden", True),
    ("hidden", 2**31),
    ("epochs", 0),
    ("epochs", 2**31),  # the limit both paths share (int32 columns)
    ("epochs", "10"),
    ("seed", -1),
    ("seed", 1.0),
    ("output", "relu"),
    ("update", "async"),
    ("init", [1.0, 0.0]),
    ("init", [0.0]),
    ("init", [0.0, math.inf]),
    ("stop_below", -1.0),
    ("stop_below", math.inf),  # finiteness: refused by both paths
    ("stop_below", math.nan),
    ("diverge_above", 0),
    ("diverge_above", math.inf),
    ("dtype", "float16"),
    ("fastmath", 1),
    ("activation", "softplus"),
    ("bias", 1),
    ("scaling", "xavier"),
    ("step", "mean"),
    ("alpha_hidden", -0.1),
    ("alpha_output", math.nan),
]


@pytest.mark.parametrize(("key", "value"), BAD)
def test_train_and_spec_refuse_alike(key, value):
    with pytest.raises(RunnerError) as from_train:
        runner.train(X, Y, **({"epochs": 3} | {key: value}))
    with pytest.raises(RunnerError) as from_spec:
        build_spec({"name": "v", "train": {key: value}}, "v.toml")
    assert isinstance(from_train.value, ValueError)  # RunnerError is a ValueError
    assert from_train.value.key == key
    assert from_spec.value.key == f"train.{key}"
    assert from_train.value.reason == from_spec.value.reason
    assert str(from_train.value).startswith(f"{key}: ")


PER_RUN = {
    "alpha": "alpha",
    "seed": "seeds",
    "alpha_hidden": "alpha_hidden",
    "alpha_output": "alpha_output",
}  # runner.train's key -> train_many's


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, v in BAD if k in PER_RUN])
def test_train_many_refuses_a_bad_per_run_value_as_train_does(key, value):
    """Each per-run value is checked as given (not converted first), the second of two."""
    good = {"alpha": 0.1, "seed": 0, "alpha_hidden": 0.1, "alpha_output": 0.1}[key]
    with pytest.raises(RunnerError) as from_train:
        runner.train(X, Y, **{"epochs": 3, key: value})
    with pytest.raises(RunnerError) as from_many:
        runner.train_many(X, Y, **{"epochs": 3, PER_RUN[key]: [good, value]})
    assert from_many.value.key == key
    assert from_many.value.reason == from_train.value.reason


@pytest.mark.parametrize(
    ("key", "value"),
    [("hidden", np.int64(3)), ("seed", np.int32(7)), ("alpha", np.float32(0.25)),
     ("epochs", 2**31 - 1), ("stop_below", 1e-300)],
)  # fmt: skip
def test_train_and_spec_accept_alike(key, value):
    spec = build_spec({"name": "v", "train": {key: value}}, "v.toml")
    assert spec.train[key] == value
    if key != "epochs":
        res = runner.train(X, Y, **({"epochs": 3} | {key: value}))
        assert len(res.loss) >= 1


def test_grid_values_use_the_same_rule():
    with pytest.raises(RunnerError, match=r"grid\.stop_below: must be a finite number > 0"):
        build_spec({"name": "v", "grid": {"stop_below": [1e-3, math.inf]}}, "v.toml")


@pytest.mark.parametrize(
    ("kw", "key"),
    [({"dtype": "float16"}, "dtype"), ({"fastmath": 1}, "fastmath"), ({"tile": 5}, "tile"),
     ({"output": "relu"}, "output"), ({"update": "async"}, "update")],
)  # fmt: skip
def test_run_batch_and_run_batch_cuda_refuse_alike(kw, key):
    """One set of checks, by the parameter table's rules: the same RunnerError from both
    (before the CUDA path imports numba-cuda or looks for a device)."""
    from runner.run.cuda import run_batch_cuda
    from runner.run.train import init_weights, run_batch

    X, Y = np.ones((4, 2)), np.ones((4, 1))
    errors = []
    for fn in (run_batch, run_batch_cuda):
        Wh, Wz = init_weights([0], 2, 3, 1)
        args = {"output": "linear", "update": "sequential"} | kw
        with pytest.raises(RunnerError) as err:
            fn(X, Y, Wh, Wz, np.ones(1), 5, args.pop("output"), args.pop("update"), **args)
        errors.append((err.value.key, str(err.value)))
    assert errors[0] == errors[1] and errors[0][0] == key
