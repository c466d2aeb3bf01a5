"""The project's own error: bad input, reported in one line with exit code 2."""

from __future__ import annotations


class RunnerError(ValueError):
    """Bad input (spec, data, arguments, paths).

    ``str(err)`` is one line naming the file, the key and what is wrong.
    """

    def __init__(self, reason: str, *, file: str | None = None, key: str | None = None):
        self.reason = reason
        self.file = file
        self.key = key
        super().__init__(self.line())

    def line(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.key:
            where.append(self.key)
        text = " ".join(self.reason.split())
        return f"{': '.join(where)}: {text}" if where else text
