"""The README's "Analysing results" examples run as written, against a small real sweep."""

import re
from pathlib import Path

from conftest import make_sweep

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_analysing_results_examples_run(tmp_path, monkeypatch, capsys):
    grid = "alpha = [0.01, 0.1]\nhidden = [2, 4]\nseed = { start = 0, stop = 3 }"
    make_sweep(tmp_path, "seed-sweep", grid, train="epochs = 50")
    monkeypatch.chdir(tmp_path)  # so results/seed-sweep resolves
    blocks = re.findall(r"```python\n(.*?)```", section("Analysing results"), re.S)
    assert len(blocks) >= 2
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})
    assert "final_loss" in capsys.readouterr().out


def test_every_analysis_command_is_documented():
    from runner.cli import _parser

    text = section("Analysing results")
    sub = next(a for a in _parser()._actions if a.dest == "command")
    for name in ("summary", "plot", "report"):
        assert f"runner {name} " in text
        assert sub.choices[name].epilog.startswith(f"example: runner {name} ")
