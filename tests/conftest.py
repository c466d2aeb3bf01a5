import os

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def need_service(reason: str) -> None:
    """Skip outside CI (with the reason); fail in CI, where every service must exist."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """reference(overrides) -> results folder of a plain local run (one process), made once."""
    from cluster_helpers import run_sweep

    made = {}

    def get(overrides: list[str]):
        key = tuple(overrides)
        if key not in made:
            made[key] = run_sweep(tmp_path_factory.mktemp("reference"), overrides, "--jobs", "1")
        return made[key]

    return get
