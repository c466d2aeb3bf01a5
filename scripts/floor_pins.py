"""Print pip requirements that pin each direct dependency of runner (and of its dev
extra) at the lowest version pyproject.toml allows: ``name>=X`` becomes ``name==X``.

``make test-oldest`` installs these, so the floors it tests are the declared ones.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# NAME>=X, optionally with an upper bound (",<Y"), which the floor pin ignores
FLOOR = re.compile(
    r"([A-Za-z0-9_.-]+(?:\[[A-Za-z0-9_,.-]+\])?)\s*>=\s*([0-9][A-Za-z0-9.]*)"
    r"(?:\s*,\s*<\s*[0-9][A-Za-z0-9.]*)?"
)


def pins(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    out = []
    for req in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        m = FLOOR.fullmatch(req.strip())
        if m is None:
            sys.exit(f"{pyproject}: dependency {req!r} has no single lower bound (NAME>=X)")
        out.append(f"{m.group(1)}=={m.group(2)}")
    return out


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    print("\n".join(pins(Path(sys.argv[1]) if len(sys.argv) > 1 else root / "pyproject.toml")))
