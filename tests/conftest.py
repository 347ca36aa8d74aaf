"""Shared fixtures: a real stack environment for the tests that need torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from harness.config.matrix import Stack
from harness.measure import envs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TEST_STACK = Stack(
    id="tf5.24.0-torch2.13.0-py3.11", python="3.11", transformers="5.24.0", torch="2.13.0",
    accelerate="1.15.0", pins=("optimum-quanto==0.2.7",), find_links=(), index_url=None,
    torch_backend=None,
)  # fmt: skip


# Hypothesis: `ci` (the default) is deterministic; HYPOTHESIS_PROFILE=explore (as `nox -s
# fuzz` sets it) draws fresh seeds and more examples, keeping failures in .hypothesis/.
_QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", derandomize=True, print_blob=True, deadline=None, database=None,
    suppress_health_check=_QUIET,
)  # fmt: skip
settings.register_profile(
    "explore", derandomize=False, print_blob=True, deadline=None, max_examples=1000,
    suppress_health_check=_QUIET,
)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _tmp_store(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs a test makes go to a results store of its own, never the checkout's reports/store."""
    monkeypatch.setenv("HARNESS_STORE", str(tmp_path_factory.mktemp("store")))


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where browser tests save their screenshots: a temporary folder, so a test run leaves the
    checkout clean; HARNESS_SCREENSHOTS=docs refreshes the README's images."""
    folder = os.environ.get("HARNESS_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def test_stack() -> Stack:
    return TEST_STACK


@pytest.fixture(scope="session")
def stack_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real uv environment with torch 2.13.

    Wheels come from where the product looks (harness.measure.envs.wheel_sources): uv's own
    variables, else pip's configuration, so a machine's local wheelhouse (a CPU torch build
    instead of a 3 GB CUDA one) is used when pip is set up for it.
    """
    root = Path(os.environ.get("HARNESS_TEST_ENVS", str(tmp_path_factory.mktemp("envs"))))
    venv = root / TEST_STACK.id
    python = envs.venv_python(venv)
    uv = envs.find_uv()
    assert uv, "uv is a dependency of the project"
    if not python.exists():
        subprocess.run([uv, "venv", "-q", "-p", "3.11", str(venv)], check=True)
    result = envs.install(TEST_STACK, python, venv / "install.log")
    assert result.ok, result.message
    return python


# ---------------------------------------------------------------- nox on a small matrix

REPO = Path(__file__).resolve().parent.parent
TINY_PROMPTS: list[str] = json.loads(
    (REPO / "harness" / "fixtures" / "tiny_gpt2" / "manifest.json").read_text()
)["prompts"]
TINY_MATRIX = """\
settings: {settings}
stacks:
{stacks}
models:
  tiny-gpt2: {{source: embedded, prompts: {prompts}}}
scenarios:
  low_cpu_mem_usage: [omit, true]
  device_map: [none]
  dtype: [float32]
  checkpoint_format: [safetensors, bin]
profiles:
  smoke: {{models: [tiny-gpt2], repeats: 1}}
  default: {{models: [tiny-gpt2]}}
  full: {{models: [tiny-gpt2]}}
"""


@dataclass(frozen=True)
class NoxBench:
    """`nox -s bench` on a tiny-gpt2 matrix in a tmp folder: the command, its env, the files."""

    cmd: list[str]
    env: dict[str, str]
    matrix: Path
    run_dir: Path


@pytest.fixture
def nox_bench(tmp_path: Path) -> Callable[[str, str], NoxBench]:
    def make(stacks: str, settings: str) -> NoxBench:
        matrix = tmp_path / "matrix.yaml"
        text = TINY_MATRIX.format(
            settings=settings, stacks=stacks, prompts=json.dumps(TINY_PROMPTS)
        )
        matrix.write_text(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOX_")}
        env.update({"HARNESS_MATRIX": str(matrix), "HARNESS_CACHE": str(tmp_path / "cache"),
                    "HF_HUB_OFFLINE": "1"})  # fmt: skip
        # Wheels: as in stack_python, nox's harness reads uv's variables or pip's config.
        cmd = [sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), "-s", "bench",
               "--envdir", str(tmp_path / "envs")]  # fmt: skip
        return NoxBench(cmd, env, matrix, tmp_path / "run")

    return make


CHROMIUM = Path("/usr/bin/chromium")
# As the machine's probe starts it: without the background-networking flags Chromium keeps
# trying hosts this closed network refuses.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright, one per test module (browser tests)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Playwright gives each launch a fresh, temporary --user-data-dir.
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield chromium
        chromium.close()
