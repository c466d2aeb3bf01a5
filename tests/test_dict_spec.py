"""Specs from Python: a dict is validated as the TOML file is, and gives the same sweep."""

import pytest
from helpers import assert_same_results, write_spec

import runner
from runner.errors import RunnerError
from runner.plan.spec import load_spec, spec_from_dict

SMALL = {
    "name": "small",
    "data": {"builtin": "seed"},
    "train": {"epochs": 300, "init": (0.0, 1.0)},
    "grid": {"alpha": [0.01, 0.1, 0.5], "hidden": [2, 3], "seed": {"start": 0, "stop": 6}},
    "record": {"every": 1},
    "sweep": {"chunk_runs": 5},
}


def test_dict_spec_equals_the_toml_spec(tmp_path):
    toml = write_spec(tmp_path)  # helpers.SMALL_SPEC: the same sweep as SMALL
    assert spec_from_dict(SMALL).hash == load_spec(toml).hash
    a = runner.sweep(SMALL, out=tmp_path / "a", progress=False)
    runner.sweep(toml, out=tmp_path / "b", progress=False)
    assert a.runs_trained == 36
    assert_same_results(tmp_path / "a" / "small", tmp_path / "b" / "small")
    res = runner.load(tmp_path / "a" / "small")
    assert res.spec == runner.load(tmp_path / "b" / "small").spec
    assert len(res.summary()) == 6


def test_dict_spec_with_overrides_and_growth(tmp_path):
    runner.sweep(SMALL, out=tmp_path, progress=False)
    more = runner.sweep(SMALL, out=tmp_path, progress=False, overrides=["grid.hidden=2,3,4"])
    assert more.runs_trained == 18 and more.runs_before == 36
    assert SMALL["grid"]["hidden"] == [2, 3]  # the caller's dict is left alone


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": {"alpah": 0.1}}, "spec (dict): train.alpah: unknown key 'alpah'; did you mean"),
        ({"grid": {"hiden": [2]}}, "spec (dict): grid.hiden: unknown key 'hiden'; did you mean"),
        ({"gird": {}}, "spec (dict): gird: unknown key 'gird'; did you mean 'grid'"),
        ({"sweep": {"chunk_run": 3}}, "spec (dict): sweep.chunk_run: unknown key"),
        ({"train": {"epochs": -1}}, "spec (dict): train.epochs: must be >= 1"),
        ({"grid": {"alpha": {"start": 0.1, "stpo": 1}}}, "spec (dict): grid.alpha: unknown key"),
        ({"sample": {"points": 3, "alpha": {"unifrom": [0.1, 0.2]}}}, "spec (dict): sample.alpha"),
    ],
)
def test_misspelt_dict_key_is_named(tmp_path, change, message):
    raw = {**SMALL, **change}
    with pytest.raises(RunnerError) as err:
        runner.sweep(raw, out=tmp_path, progress=False)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "small").exists()


def test_not_a_dict_is_refused():
    with pytest.raises(RunnerError, match="must be a dict"):
        spec_from_dict(["name", "x"])  # type: ignore[arg-type]
