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


def test_random_data_is_the_references_draw_and_goes_into_the_hash(tmp_path):
    """``[data] random``: standard normal X, then Y, from default_rng(seed); sweep.json keeps
    the four numbers, so another seed is another sweep."""
    from runner.kernel.reference import random_data
    from runner.plan.spec import build_spec

    raw = {"name": "r", "data": {"random": {"samples": 272, "inputs": 16}}}
    spec = build_spec(raw, "r.toml")
    X, Y = random_data(272, 16, 1, 0)
    assert np.array_equal(spec.X, X) and np.array_equal(spec.Y, Y)
    assert spec.X.shape == (272, 16) and spec.Y.shape == (272, 1)
    assert spec.data == {"random": {"samples": 272, "inputs": 16, "outputs": 1, "seed": 0}}
    rng = np.random.default_rng(0)
    assert np.array_equal(X, rng.standard_normal((272, 16)))  # X first, then Y
    other = build_spec({**raw, "data": {"random": {"samples": 272, "inputs": 16, "seed": 1}}},
                       "r.toml")  # fmt: skip
    assert other.hash != spec.hash


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
        ("text.csv", "a,y\n1,2\nx,3\n", ["a"], ["y"], "line 3, column 'a': 'x' is not a number"),
        ("nan.csv", "a,y\n1,2\nnan,3\n", ["a"], ["y"], "line 3, column 'a': 'nan' is not a fin"),
        ("inf.csv", "a,y\n1,inf\n", ["a"], ["y"], "line 2, column 'y': 'inf' is not a finite"),
        ("gap.csv", "a,y\n1,2\n,3\n", ["a"], ["y"], "line 3, column 'a': empty cell; every"),
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


# ----- bad cells: file, line from the file's first line, column, the cell as written -----
def test_missing_cell_names_file_line_column(tmp_path):
    """The issue's case: a blank line and a quoted two-line cell above the bad one still count."""
    text = 'age,note,bmi,y\n1,ok,2.5,3\n\n2,"two\nlines",3.5,4\n3,x,,5\n'
    path = tmp_path / "points.csv"
    path.write_text(text)
    with pytest.raises(RunnerError) as info:
        load_file(path, ["age", "bmi"], ["y"])
    assert str(info.value) == (
        f"{path} line 6, column 'bmi': empty cell; every feature and target cell must be a "
        "finite number"
    )


@pytest.mark.parametrize(
    ("cell", "what"),
    [("", "empty cell"), ("abc", "'abc' is not a number"), ("NA", "'NA' is not a number"),
     ("1e999", "'1e999' is not a finite number"), ("-inf", "'-inf' is not a finite number"),
     ("NaN", "'NaN' is not a finite number")],
)  # fmt: skip
def test_bad_cell_is_quoted_as_written(tmp_path, cell, what):
    path = tmp_path / "d.csv"
    path.write_text(f"x,y\n1,2\n3,4\n{cell},5\n")
    with pytest.raises(RunnerError) as info:
        load_file(path, ["x"], ["y"])
    assert str(info.value).startswith(f"{path} line 4, column 'x': {what}; every")
    assert "np." not in str(info.value) and "float64" not in str(info.value)


@given(
    rows=st.integers(1, 8),
    bad_row=st.integers(0, 7),
    bad_col=st.integers(0, 2),
    cell=st.sampled_from(["", "x", "nan", "inf", "1,5"]),
    blanks=st.lists(st.integers(0, 8), max_size=3),
)
def test_bad_cell_line_is_the_files_line(tmp_path_factory, rows, bad_row, bad_col, cell, blanks):
    """Any file: the line named is the line where the bad cell stands (blank lines between)."""
    bad_row = min(bad_row, rows - 1)
    lines = ["a,b,y"]
    where = None
    for r in range(rows):
        for _ in range(blanks.count(r)):
            lines.append("")
        cells = [str(r + c) for c in range(3)]
        if r == bad_row:
            cells[bad_col] = f'"{cell}"' if "," in cell else cell
            where = len(lines) + 1
        lines.append(",".join(cells))
    path = tmp_path_factory.mktemp("d") / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunnerError) as info:
        load_file(path, ["a", "b"], ["y"])
    column = "aby"[bad_col]
    assert str(info.value).startswith(f"{path} line {where}, column {column!r}: ")
    assert (repr(cell) in str(info.value)) if cell else ("empty cell" in str(info.value))


def test_parquet_bad_cells_name_the_row(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(
        {"x": [1.0, None, 3.0], "s": ["1", "2", "two"], "y": [1.0, 2.0, np.inf]}
    ).to_parquet(path)
    for features, targets, want in [
        (["x"], ["s"], "row 2, column 'x': empty cell (null); every"),
        (["s"], ["x"], "row 3, column 's': 'two' is not a number; every"),
        (["s"], ["y"], "row 3, column 's'"),
    ]:
        with pytest.raises(RunnerError) as info:
            load_file(path, features, targets)
        assert str(info.value).startswith(f"{path} {want}")
    with pytest.raises(RunnerError, match=r"data.targets: no column 'z' \(columns: \['x', 's'"):
        load_file(path, ["x"], ["z"])
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"x": [1.0, 2.0], "y": pa.array([np.nan, 1.0], from_pandas=False)}), path
    )
    with pytest.raises(RunnerError) as info:
        load_file(path, ["x"], ["y"])
    # a NaN stored as NaN, not as null
    assert str(info.value).startswith(f"{path} row 1, column 'y': 'nan' is not a finite number")


# ----- standardisation -----
@given(
    X=arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 4)), elements=finite),
    mask=st.lists(st.booleans(), min_size=12, max_size=12),
    targets=st.booleans(),
)
def test_standardize_is_numpys_mean_and_population_std(X, mask, targets):
    from runner.plan.data import standardize

    train = np.array(mask[: len(X)])
    train[0] = True  # at least one training row
    Y = X[:, :1] * 3 - 1
    Xs, Ys, stats = standardize(X, Y, train, targets)
    for name, arr, got in (("x", X, Xs), ("y", Y, Ys)):
        if name == "y" and not targets:
            assert got is Y and stats["y_mean"] is None and stats["y_scale"] is None
            continue
        mean = np.mean(arr[train], axis=0)
        std = np.std(arr[train], axis=0, ddof=0)
        scale = np.where(std == 0, 1.0, std)
        assert stats[f"{name}_mean"] == mean.tolist()
        assert stats[f"{name}_scale"] == scale.tolist()
        np.testing.assert_array_equal(got, (arr - mean) / scale)


def test_standardized_sweep_trains_on_numpys_standardized_data(tmp_path):
    """[data] standardize = true gives the losses of the same sweep on data standardised
    by plain NumPy, bit for bit; sweep.json holds the statistics; a sigmoid run keeps Y."""
    import json

    import runner

    rng = np.random.default_rng(5)
    X = rng.normal(3.0, 4.0, (9, 3))
    Y = X @ [[0.5], [-1.0], [2.0]] + 10.0
    frame = pd.DataFrame(np.hstack([X, Y]), columns=["a", "b", "c", "y"])
    frame.to_csv(tmp_path / "d.csv", index=False, float_format="%.17g")
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    Ys = (Y - Y.mean(axis=0)) / Y.std(axis=0)
    np.savez(tmp_path / "s.npz", X=Xs, Y=Ys)
    base = {"train": {"epochs": 30, "hidden": 3}, "grid": {"alpha": [0.01, 0.05], "seed": [0, 1]}}
    csv = {"path": str(tmp_path / "d.csv"), "features": ["a", "b", "c"], "targets": ["y"]}
    runner.sweep({"name": "std", "data": {**csv, "standardize": True}, **base},
                 out=tmp_path, quiet=True)  # fmt: skip
    runner.sweep({"name": "hand", "data": {"path": str(tmp_path / "s.npz")}, **base},
                 out=tmp_path, quiet=True)  # fmt: skip
    got = pd.read_parquet(tmp_path / "std" / "losses")
    want = pd.read_parquet(tmp_path / "hand" / "losses")
    np.testing.assert_array_equal(got["loss"].to_numpy(), want["loss"].to_numpy())
    scaling = json.loads((tmp_path / "std" / "sweep.json").read_text())["spec"]["data"]["scaling"]
    assert scaling == {
        "x_mean": X.mean(axis=0).tolist(),
        "x_scale": X.std(axis=0).tolist(),
        "y_mean": Y.mean(axis=0).tolist(),
        "y_scale": Y.std(axis=0).tolist(),
    }
    # a sigmoid output among the runs: the targets stay as they are
    from runner.plan.spec import spec_from_dict

    mixed = spec_from_dict({"name": "m", "data": {**csv, "standardize": True},
                            "grid": {"output": ["linear", "sigmoid"]}})  # fmt: skip
    np.testing.assert_array_equal(mixed.X, Xs)
    np.testing.assert_array_equal(mixed.Y, Y)
    assert mixed.data["scaling"]["y_mean"] is None
    plain = spec_from_dict({"name": "m", "data": {**csv, "standardize": False}})
    assert "standardize" not in plain.resolved()["data"]
    assert plain.hash == spec_from_dict({"name": "m", "data": csv}).hash


def test_a_long_cell_is_shortened():
    from runner.plan.data import describe_cell

    assert describe_cell("x" * 41) == f"{'x' * 40 + '...'!r} is not a number"
    assert describe_cell("   ") == "empty cell"


def test_a_standardized_sweep_resumes_and_grows(tmp_path):
    """The statistics depend on the data alone: the same spec resumes, more alphas grow it."""
    import runner

    spec = {"name": "g", "data": {"builtin": "seed", "standardize": True},
            "train": {"epochs": 20}, "grid": {"alpha": [0.01], "seed": [0, 1]}}  # fmt: skip
    assert runner.sweep(spec, out=tmp_path, quiet=True).runs_trained == 2
    assert runner.sweep(spec, out=tmp_path, quiet=True).runs_trained == 0
    spec["grid"]["alpha"] = [0.01, 0.02]
    grown = runner.sweep(spec, out=tmp_path, quiet=True)
    assert (grown.runs_before, grown.runs_trained) == (2, 2)
    spec["data"]["standardize"] = False
    with pytest.raises(RunnerError, match=r"data\.standardize true -> "):
        runner.sweep(spec, out=tmp_path, quiet=True)
