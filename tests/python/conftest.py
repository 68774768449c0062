"""Shared fixtures: the built `nibble` command and helpers to call it."""
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU (skipped elsewhere)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("NIBBLE_GPU_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="no GPU here (set NIBBLE_GPU_TESTS=1 on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def nibble_cli():
    build = pathlib.Path(os.environ.get("NIBBLE_BUILD_DIR", REPO / "build"))
    binary = build / "cli" / "nibble"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build first (bash tools/build.sh)")

    def run(*args, check=True):
        result = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"nibble {' '.join(map(str, args))} failed: {result.stderr}")
        return result

    run.binary = binary
    return run
