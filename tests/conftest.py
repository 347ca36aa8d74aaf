"""Shared fixtures: a real stack environment for the tests that need torch."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness import envs
from harness.matrix import Stack

WHEELHOUSE = Path("/opt/wheels")
TEST_STACK = Stack(
    id="tf5.24.0-torch2.13.0-py3.11", python="3.11", transformers="5.24.0", torch="2.13.0",
    accelerate="1.15.0", pins=(), find_links=(), index_url=None, torch_backend=None,
)  # fmt: skip


@pytest.fixture(scope="session")
def test_stack() -> Stack:
    return TEST_STACK


@pytest.fixture(scope="session")
def stack_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real uv environment with torch 2.13 (CPU, from the local wheelhouse when present)."""
    root = Path(os.environ.get("HARNESS_TEST_ENVS", str(tmp_path_factory.mktemp("envs"))))
    venv = root / TEST_STACK.id
    python = envs.venv_python(venv)
    uv = envs.find_uv()
    assert uv, "uv is a dependency of the project"
    if not python.exists():
        subprocess.run([uv, "venv", "-q", "-p", "3.11", str(venv)], check=True)
    if WHEELHOUSE.is_dir():
        os.environ.setdefault("UV_FIND_LINKS", str(WHEELHOUSE))
    result = envs.install(TEST_STACK, python, venv / "install.log")
    assert result.ok, result.message
    return python
