"""Specs, overrides and data files are data: a payload built to run code when evaluated
or unpickled is refused (or taken as a plain string) and runs nothing."""

import os
import pickle

import numpy as np
import pytest
from helpers import runner_cmd, write_spec


def payload(marker) -> str:
    """Python source that creates ``marker`` when evaluated."""
    return f"__import__('os').system('touch {marker}')"


class Touch:
    """Unpickling this object creates the file named by ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_the_payloads_are_live(tmp_path):
    """Evaluated or unpickled, each payload really runs code: the tests below mean something."""
    eval(payload(tmp_path / "evaluated"))
    pickle.loads(pickle.dumps(Touch(tmp_path / "unpickled")))
    np.savez(tmp_path / "evil.npz", X=np.array([Touch(tmp_path / "npz")], dtype=object), Y=[1.0])
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as npz:
        npz["X"]
    assert {p.name for p in tmp_path.iterdir()} >= {"evaluated", "unpickled", "npz"}


def refused(r, marker, where: str) -> None:
    assert not marker.exists(), "code from the input ran"
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and where in r.stderr, r.stderr


SPEC_FIELDS = [
    ("train.epochs", "[train]\nepochs = {p!r}"),
    ("grid.alpha", "[grid]\nalpha = [{p!r}]"),
    ("train.output", "[train]\noutput = {p!r}"),
    ("data.builtin", "[data]\nbuiltin = {p!r}"),
    ("train.init", "[train]\ninit = [{p!r}, 1.0]"),
]


@pytest.mark.parametrize(("key", "table"), SPEC_FIELDS, ids=[k for k, _ in SPEC_FIELDS])
def test_code_in_a_spec_value_is_refused(tmp_path, key, table):
    marker = tmp_path / "ran"
    spec = write_spec(tmp_path, 'name = "evil"\n' + table.format(p=payload(marker)))
    r = runner_cmd("sweep", str(spec), "--out", str(tmp_path / "out"), cwd=tmp_path)
    refused(r, marker, str(spec))
    assert key.split(".")[-1] in r.stderr


@pytest.mark.parametrize("key", ["train.epochs", "grid.alpha", "train.update", "grid.hidden"])
def test_code_in_an_override_is_refused(tmp_path, key):
    marker = tmp_path / "ran"
    spec = write_spec(tmp_path)
    r = runner_cmd(
        "sweep", str(spec), "--out", str(tmp_path / "out"), "--set", f"{key}={payload(marker)}",
        cwd=tmp_path,
    )  # fmt: skip
    refused(r, marker, key.split(".")[-1])


def test_code_in_a_spec_name_stays_a_name(tmp_path):
    marker = tmp_path / "ran"
    spec = write_spec(tmp_path, f'name = "{payload(marker)}"\n[train]\nepochs = 5\n')
    r = runner_cmd("sweep", str(spec), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert not marker.exists(), "code from the spec's name ran"
    assert "Traceback" not in r.stderr
    assert r.returncode in (0, 2), r.stderr


def test_pickled_objects_in_an_npz_file_are_refused(tmp_path):
    marker = tmp_path / "ran"
    data = tmp_path / "evil.npz"
    np.savez(data, X=np.array([[Touch(marker), 1.0]], dtype=object), Y=np.array([[1.0]]))
    spec = write_spec(tmp_path, f'name = "evil"\n[data]\npath = "{data}"\n')
    r = runner_cmd("sweep", str(spec), "--out", str(tmp_path / "out"), cwd=tmp_path)
    refused(r, marker, str(data))
    assert "pickle" in r.stderr.lower() or "object" in r.stderr.lower()


def test_code_in_a_csv_cell_is_refused(tmp_path):
    marker = tmp_path / "ran"
    data = tmp_path / "evil.csv"
    data.write_text(f'x,y\n1.0,2.0\n"{payload(marker)}",3.0\n')
    spec = write_spec(
        tmp_path,
        f'name = "evil"\n[data]\npath = "{data}"\nfeatures = ["x"]\ntargets = ["y"]\n',
    )
    r = runner_cmd("sweep", str(spec), "--out", str(tmp_path / "out"), cwd=tmp_path)
    refused(r, marker, str(data))
    assert "evil.csv line 3, column 'x': \"__import__('os').system('touch " in r.stderr
