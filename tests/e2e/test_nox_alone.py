"""A nox installed on its own (pipx, uvx, a venv with only nox) lists the sessions.

The noxfile imports the harness; its PEP 723 block names the harness's host dependencies, so
such a nox makes .nox/_nox_script_mode with them and re-runs there. Only the package index
(as pip is configured here) is used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SESSIONS = ("bench", "golden", "report", "compare", "bisect", "ci-workflow", "tests", "e2e",
            "lint", "fuzz", "publish")  # fmt: skip


@pytest.mark.e2e
def test_nox_alone_lists_the_sessions(tmp_path: Path) -> None:
    venv = tmp_path / "noxonly"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "nox"],
        check=True, timeout=600,
    )  # fmt: skip
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    # The checkout's noxfile, as it is now (the clone holds the last commit).
    (clone / "noxfile.py").write_bytes((REPO / "noxfile.py").read_bytes())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NOX_", "HARNESS_", "VIRTUAL_ENV", "PYTHONPATH"))}  # fmt: skip
    # Nothing of this interpreter's environment on PATH: only the nox-only venv's nox.
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix)
    )
    proc = subprocess.run(
        [str(venv / "bin" / "nox"), "-l"], cwd=clone, env=env,
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ModuleNotFoundError" not in proc.stderr
    names = {ln.split()[1] for ln in proc.stdout.splitlines() if ln[:2] in ("- ", "* ")}
    assert set(SESSIONS) <= names, proc.stdout
    assert any(n.startswith("bench-tf") for n in names)
    assert (clone / ".nox" / "_nox_script_mode").is_dir()
