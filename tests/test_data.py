"""Built-in datasets and the .csv / .parquet / .npz loaders."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from runner.errors import RunnerError
from runner.plan.data import builtin, load_file


def test_seed_is_the_notebooks_four_points():
    X, Y = builtin("seed")
    np.testing.assert_array_equal(X, [[1, 1], [1, 2], [2, 1], [2, 2]])
    np.testing.assert_array_equal(Y, [[0], [1], [2], [3]])
    assert X.dtype == Y.dtype == np.float64


def test_unknown_builtin_names_choices():
    with pytest.raises(RunnerError, match="xor"):
        builtin("nope")


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@given(
    X=arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 4)), elements=finite),
    n_targets=st.integers(1, 3),
    fmt=st.sampled_from([".csv", ".parquet", ".npz"]),
)
def test_round_trip(tmp_path_factory, X, n_targets, fmt):
    Y = X[:, :1].repeat(n_targets, axis=1) * 2 + 1
    path = tmp_path_factory.mktemp("d") / f"data{fmt}"
    feats = [f"x{i}" for i in range(X.shape[1])]
    targs = [f"y{i}" for i in range(n_targets)]
    frame = pd.DataFrame(np.hstack([X, Y]), columns=feats + targs)
    if fmt == ".csv":
        frame.to_csv(path, index=False, float_format="%.17g")
    elif fmt == ".parquet":
        frame.to_parquet(path)
    else:
        np.savez(path, X=X, Y=Y)
    gotX, gotY = load_file(path, feats, targs)
    np.testing.assert_array_equal(gotX, X)
    np.testing.assert_array_equal(gotY, Y)


@pytest.mark.parametrize(
    ("name", "content", "features", "targets", "message"),
    [
        ("empty.csv", "", ["a"], ["y"], "empty"),
        ("header.csv", "a,y\n", ["a"], ["y"], "no rows"),
        ("missing.csv", "a,y\n1,2\n", ["a", "b"], ["y"], "no column 'b'"),
        ("text.csv", "a,y\n1,2\nx,3\n", ["a"], ["y"], "row 2"),
        ("nan.csv", "a,y\n1,2\nnan,3\n", ["a"], ["y"], "not a finite number"),
        ("inf.csv", "a,y\n1,inf\n", ["a"], ["y"], "not a finite number"),
        ("nofeat.csv", "a,y\n1,2\n", [], ["y"], "data.features"),
        ("data.txt", "1 2\n", ["a"], ["y"], "unsupported"),
    ],
)
def test_bad_files(tmp_path, name, content, features, targets, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(RunnerError, match=message) as info:
        load_file(path, features, targets)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_npz_without_y_and_missing_file(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((2, 2)))
    with pytest.raises(RunnerError, match="missing array 'Y'"):
        load_file(tmp_path / "d.npz")
    with pytest.raises(RunnerError, match="not found"):
        load_file(tmp_path / "absent.csv", ["a"], ["y"])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(RunnerError, match="not a readable"):
        load_file(tmp_path / "bad.npz")


def test_npz_mismatched_rows(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((3, 2)), Y=np.ones((2, 1)))
    with pytest.raises(RunnerError, match="3 rows"):
        load_file(tmp_path / "d.npz")
