"""Every command has help with an example, and appears in the README."""

import argparse

import pytest
from helpers import ROOT, runner_cmd

from runner.cli import COMMANDS, _parser


def subcommands() -> list[str]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_every_parser_has_a_command():
    assert sorted(subcommands()) == sorted(COMMANDS)


@pytest.mark.parametrize("name", subcommands())
def test_help_has_an_example_and_readme_mentions_it(name):
    r = runner_cmd(name, "--help")
    assert r.returncode == 0
    assert "example:" in r.stdout
    assert f"runner {name}" in r.stdout
    assert f"runner {name}" in (ROOT / "README.md").read_text()


def test_top_level_help_and_version():
    r = runner_cmd("--help")
    assert r.returncode == 0
    for name in subcommands():
        assert name in r.stdout
    assert runner_cmd("--version").stdout.startswith("runner ")
