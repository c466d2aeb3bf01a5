"""The README's "Growing a sweep" and "Sampled points" examples run as written."""

import re
import tomllib

from test_readme import README, section

import runner


def test_growing_a_sweep_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", section("Growing a sweep"), re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(README), "exec"), {})
    assert capsys.readouterr().out.strip() == "18 trained now, 12 already there"


def test_sampled_points_example_runs_and_grows(tmp_path):
    text = re.findall(r"```toml\n(.*?)```", section("Sampled points"), re.S)[0]
    spec = tmp_path / "search.toml"
    spec.write_text(text)
    first = runner.sweep(spec, out=tmp_path, progress=False)
    raw = tomllib.loads(text)
    assert first.runs_trained == raw["sample"]["points"] * 3
    more = runner.sweep(spec, out=tmp_path, overrides=["sample.points=12"], progress=False)
    assert more.runs_trained == 4 * 3 and more.runs_before == first.runs_trained
    runs = runner.load(tmp_path / "alpha-search").runs
    assert runs["alpha"].between(1e-3, 0.3).all() and set(runs["hidden"]) <= {2, 4, 8}
