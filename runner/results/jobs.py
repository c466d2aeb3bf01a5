"""The SLURM files of a results folder, read without SLURM: array size and job ids.

``runner slurm`` writes them (runner.run.slurm); ``runner status`` reads them.
"""

from __future__ import annotations

import re
from pathlib import Path

SLURM_DIR, SCRIPT, JOBS = "slurm", "sweep.sbatch", "jobs.txt"
ARRAY_RE = re.compile(r"^#SBATCH --array=0-(\d+)\s*$", re.MULTILINE)


def array_tasks(folder: str | Path) -> int | None:
    """N of the job array last written for this results folder, if any."""
    try:
        text = (Path(folder) / SLURM_DIR / SCRIPT).read_text()
    except OSError:
        return None
    found = ARRAY_RE.search(text)
    return int(found.group(1)) + 1 if found else None


def job_ids(folder: str | Path) -> list[str]:
    """Job ids submitted for this results folder, oldest first."""
    try:
        lines = (Path(folder) / SLURM_DIR / JOBS).read_text().splitlines()
    except OSError:
        return []
    return [line.split()[0] for line in lines if line.strip()]
