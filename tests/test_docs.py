"""runner documents itself: docs/ is linked from the README, every link stays inside the
repository and resolves, and nothing refers to a design document outside it."""

import re
import subprocess

import pytest
from helpers import ROOT

# built from pieces, so that this file does not match itself
OUTSIDE = re.compile(r"\.\./" + "shared|/work/" + "shared|DESIGN" + r"\.md", re.IGNORECASE)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked() -> list[str]:
    r = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"not a git checkout: {r.stderr.strip()}")
    return [name for name in r.stdout.split("\0") if name]


def text_of(name: str) -> str | None:
    data = (ROOT / name).read_bytes()
    return None if b"\0" in data else data.decode("utf-8", errors="replace")


def test_no_file_refers_to_a_design_document_outside_the_repository():
    found = []
    for name in tracked():
        text = text_of(name)
        for i, line in enumerate((text or "").splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{name}:{i}: {line.strip()}")
    assert found == []


def test_markdown_links_stay_inside_and_resolve():
    bad = []
    for name in [n for n in tracked() if n.endswith(".md")]:
        for target in LINK.findall(text_of(name) or ""):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            path = ((ROOT / name).parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                bad.append(f"{name}: {target}")
    assert bad == []


def test_readme_links_the_docs_and_the_index_links_every_page():
    assert "(docs/README.md)" in (ROOT / "README.md").read_text()
    index = (ROOT / "docs" / "README.md").read_text()
    for page in ("architecture.md", "numerics.md", "results.md", "guarantees.md"):
        assert f"]({page})" in index, page
        assert (ROOT / "docs" / page).stat().st_size > 1000, page
