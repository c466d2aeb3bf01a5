"""``--set KEY=VALUE`` overrides of a spec, applied to its raw tables before validation."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from runner.errors import RunnerError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def parse_override(text: str, where: str) -> tuple[list[str], Any]:
    """``KEY=VALUE`` -> (key path, value). VALUE is TOML, or comma-separated TOML, or a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(NAME_RE.fullmatch(p) for p in key.split(".")):
        raise RunnerError(f"--set expects KEY=VALUE, got {text!r}", file=where, key="--set")
    raw = raw.strip()

    def one(s: str) -> Any:
        try:
            return tomllib.loads(f"v = {s}")["v"]
        except tomllib.TOMLDecodeError:
            return s

    value = one(raw)
    if isinstance(value, str) and "," in raw and not raw.startswith(("'", '"')):
        value = [one(p.strip()) for p in raw.split(",")]
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str], where: str) -> None:
    for text in overrides:
        path, value = parse_override(text, where)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RunnerError(f"{part!r} is not a table", file=where, key=".".join(path))
        if path[0] == "grid" and len(path) == 2 and not isinstance(value, list | dict):
            value = [value]
        node[path[-1]] = value
