"""Held-out rows ([data] validation, split_seed) and [train] patience: the plan side.

The row sets are computed here again from the rule in docs/data.md, independently of
runner.plan.holdout; bad values exit 2 with one line and write nothing."""

import numpy as np
import pandas as pd
import pytest
from helpers import runner_cmd
from hypothesis import given
from hypothesis import strategies as st

from runner.cli import main
from runner.errors import RunnerError
from runner.plan.data import random as random_data
from runner.plan.holdout import fraction_rows
from runner.plan.spec import spec_from_dict
from runner.results.growth import open_sweep


def expected_fraction_rows(n: int, fraction: float, seed: int) -> list[int]:
    """The held-out rows by the rule: k = round(fraction n) clipped to 1..n-1, the first k
    of default_rng(seed).permutation(n), in file order."""
    k = round(fraction * n)
    k = 1 if k < 1 else n - 1 if k > n - 1 else k
    return sorted(np.random.default_rng(seed).permutation(n)[:k].tolist())


def random_spec(n: int, **data) -> dict:
    return {"name": "h", "data": {"random": {"samples": n, "inputs": 3}, **data}}


@pytest.mark.parametrize(
    ("n", "fraction", "seed"),
    [(10, 0.2, 0), (10, 0.25, 7), (2, 0.01, 0), (2, 0.99, 3), (7, 0.5, 1), (101, 0.3, 12345)],
)
def test_fraction_holds_out_the_first_k_of_the_permutation(n, fraction, seed):
    spec = spec_from_dict(random_spec(n, validation=fraction, split_seed=seed))
    assert spec.holdout.dtype == np.bool_
    assert spec.holdout.shape == (n,)
    assert np.flatnonzero(spec.holdout).tolist() == expected_fraction_rows(n, fraction, seed)
    X, Y = random_data(n, 3, 1, 0)  # X and Y keep every row, in file order
    assert np.array_equal(spec.X, X)
    assert np.array_equal(spec.Y, Y)
    assert spec.data["validation"] == fraction
    assert spec.data["split_seed"] == seed
    assert spec.data["holdout"]["rows"] == len(expected_fraction_rows(n, fraction, seed))


def test_split_seed_defaults_to_0():
    spec = spec_from_dict(random_spec(20, validation=0.3))
    assert np.flatnonzero(spec.holdout).tolist() == expected_fraction_rows(20, 0.3, 0)
    assert spec.hash == spec_from_dict(random_spec(20, validation=0.3, split_seed=0)).hash
    assert spec.hash != spec_from_dict(random_spec(20, validation=0.3, split_seed=1)).hash


@given(
    n=st.integers(2, 2000),
    fraction=st.floats(0, 1, exclude_min=True, exclude_max=True),
    seed=st.integers(0, 2**63 - 1),
)
def test_fraction_rows_property(n, fraction, seed):
    mask = fraction_rows(n, fraction, seed)
    assert np.flatnonzero(mask).tolist() == expected_fraction_rows(n, fraction, seed)
    assert 1 <= mask.sum() <= n - 1


PARTS = "a,b,part,y\n1,2,0,1.5\n2,3,3,2\n3,5,0,3\n4,1,3,4\n5,0,1,5\n6,2,0,7\n"


def csv_spec(tmp_path, **data):
    (tmp_path / "d.csv").write_text(PARTS)
    base = {"path": str(tmp_path / "d.csv"), "features": ["a", "b"], "targets": ["y"]}
    return {"name": "h", "data": {**base, **data}}


def test_column_holds_out_the_rows_of_its_value(tmp_path):
    spec = spec_from_dict(csv_spec(tmp_path, validation={"column": "part", "value": 3}))
    assert spec.holdout.tolist() == [False, True, False, True, False, False]
    frame = pd.read_csv(tmp_path / "d.csv")
    assert np.array_equal(spec.X, frame[["a", "b"]].to_numpy(dtype=float))  # part is no feature
    assert np.array_equal(spec.Y, frame[["y"]].to_numpy(dtype=float))
    assert spec.data["validation"] == {"column": "part", "value": 3}
    assert "split_seed" not in spec.data


def test_column_of_strings_in_parquet(tmp_path):
    frame = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5], "set": ["train", "test", "train", "test"],
                          "y": [1.0, 2.0, 3.0, 4.0]})  # fmt: skip
    frame.to_parquet(tmp_path / "d.parquet")
    data = {"path": str(tmp_path / "d.parquet"), "features": ["x"], "targets": ["y"],
            "validation": {"column": "set", "value": "test"}}  # fmt: skip
    spec = spec_from_dict({"name": "h", "data": data})
    assert spec.holdout.tolist() == [False, True, False, True]
    assert spec.X.shape == (4, 1)


def test_standardize_uses_the_training_rows_only():
    raw = random_spec(30, validation=0.3, split_seed=4, standardize=True)
    spec = spec_from_dict(raw)
    X, Y = random_data(30, 3, 1, 0)
    train = np.ones(30, dtype=bool)
    train[expected_fraction_rows(30, 0.3, 4)] = False
    for got, arr, name in ((spec.X, X, "x"), (spec.Y, Y, "y")):
        mean, std = arr[train].mean(axis=0), arr[train].std(axis=0)
        assert np.array_equal(got, (arr - mean) / std)  # held-out rows by the same numbers
        assert spec.data["scaling"][f"{name}_mean"] == mean.tolist()
        assert spec.data["scaling"][f"{name}_scale"] == std.tolist()
        assert not np.array_equal(mean, arr.mean(axis=0))  # all rows would differ


def test_patience_is_kept_only_when_given(tmp_path):
    spec = spec_from_dict(random_spec(10, validation=0.2) | {"train": {"patience": 5}})
    assert spec.train["patience"] == 5
    assert spec.resolved()["train"]["patience"] == 5
    plain = spec_from_dict(random_spec(10, validation=0.2))
    assert plain.train.get("patience", 0) == 0
    assert "patience" not in plain.resolved()["train"]
    assert plain.hash != spec.hash


def test_a_spec_without_the_keys_resolves_as_before():
    spec = spec_from_dict({"name": "h", "data": {"builtin": "seed"}})
    assert spec.holdout is None
    assert spec.resolved()["data"] == {"builtin": "seed"}
    assert "patience" not in spec.resolved()["train"]


def test_a_resumed_sweep_makes_the_same_mask_and_refuses_another(tmp_path):
    raw = csv_spec(tmp_path, validation={"column": "part", "value": 0})
    raw["train"] = {"epochs": 5, "patience": 2}
    open_sweep(tmp_path / "out", spec_from_dict(raw))
    again = spec_from_dict(raw)
    open_sweep(tmp_path / "out", again, write=False)  # resumes: the same spec
    assert again.holdout.tolist() == [True, False, True, False, False, True]
    for change in ({"validation": {"column": "part", "value": 3}}, {"validation": 0.5}):
        other = csv_spec(tmp_path, **change) | {"train": raw["train"]}
        with pytest.raises(RunnerError, match=r"holds a different sweep \(data\.holdout"):
            open_sweep(tmp_path / "out", spec_from_dict(other), write=False)
    other = dict(raw, train={"epochs": 5, "patience": 3})
    with pytest.raises(RunnerError, match=r"train\.patience 2 -> 3"):
        open_sweep(tmp_path / "out", spec_from_dict(other), write=False)


DATA = 'path = "d.csv"\nfeatures = ["a", "b"]\ntargets = ["y"]\n'
BAD = [
    ('builtin = "xor"\nvalidation = 0', "", "data.validation: must be a fraction strictly"),
    ('builtin = "xor"\nvalidation = 1', "", "data.validation: must be a fraction strictly"),
    ('builtin = "xor"\nvalidation = 1.0', "", "data.validation: must be a fraction strictly"),
    ('builtin = "xor"\nvalidation = -0.2', "", "data.validation: must be a fraction strictly"),
    ('builtin = "xor"\nvalidation = 1.5', "", "data.validation: must be a fraction strictly"),
    ('builtin = "xor"\nvalidation = nan', "", "data.validation: must be a fraction strictly"),
    ('builtin = "xor"\nvalidation = "0.2"', "", "data.validation: must be a fraction strictly"),
    ('builtin = "xor"\nvalidation = true', "", "data.validation: must be a fraction strictly"),
    ('builtin = "xor"\nsplit_seed = 3', "", "data.split_seed: needs held-out rows"),
    ('builtin = "xor"\nvalidation = 0.5\nsplit_seed = -1', "", "data.split_seed: must be an"),
    ('builtin = "xor"\nvalidation = 0.5\nsplit_seed = 1.0', "", "data.split_seed: must be an"),
    ('builtin = "xor"\nvalidation = {column = "a", value = 1}', "", "data.validation: a column"),
    (DATA + 'validation = {column = "parts", value = 3}', "",
     "data.validation.column: d.csv: no column 'parts'"),
    (DATA + 'validation = {column = "part", value = 9}', "",
     "data.validation.value: 9 matches no row of column 'part'"),
    ('path = "d.csv"\nfeatures = ["a"]\ntargets = ["y"]\nvalidation = {column = "b", value = 1}',
     "", "data.validation.value: 1 matches every row of column 'b'"),
    (DATA + 'validation = {column = "a", value = 1}', "", "data.features: lists 'a', the"),
    (DATA + 'validation = {column = "part"}', "", "data.validation.value: is required"),
    (DATA + 'validation = {column = "part", value = 1, col = 2}', "",
     "data.validation.col: unknown key"),
    (DATA + 'validation = {column = "part", value = [1]}', "", "data.validation.value: must be"),
    (DATA + 'validation = {column = "part", value = 3}\nsplit_seed = 1', "",
     "data.split_seed: applies to a fraction only"),
    ('builtin = "xor"\nvalidation = 0.5', "patience = 0", "train.patience: must be an integer"),
    ('builtin = "xor"\nvalidation = 0.5', "patience = 2.0", "train.patience: must be an integer"),
    ('builtin = "xor"\nvalidation = 0.5', "patiense = 2", "did you mean 'patience'"),
    ('builtin = "xor"', "patience = 3", "train.patience: patience needs held-out rows: set"),
]  # fmt: skip


def bad_spec(tmp_path, data: str, train: str):
    (tmp_path / "d.csv").write_text("a,b,part,y\n1,1,0,1\n2,1,3,2\n3,1,0,3\n")
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "x"\n[data]\n{data}\n[train]\n{train}\n')
    return spec


@pytest.mark.parametrize(("data", "train", "message"), BAD)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, data, train, message):
    spec = bad_spec(tmp_path, data, train)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message in err
    assert f"{spec}: " in err
    assert not out.exists()


def test_grid_patience_is_refused(tmp_path, capsys):
    spec = bad_spec(tmp_path, 'builtin = "xor"\nvalidation = 0.5', "")
    spec.write_text(spec.read_text() + "[grid]\npatience = [2, 3]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "grid.patience: is one value for the whole sweep" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["plan", "sweep"])
def test_bad_input_in_a_real_process(tmp_path, command):
    spec = bad_spec(tmp_path, DATA + 'validation = {column = "parts", value = 3}', "")
    r = runner_cmd(command, str(spec), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert f"{spec}: data.validation.column: d.csv: no column 'parts'" in r.stderr
    assert not (tmp_path / "out").exists()
