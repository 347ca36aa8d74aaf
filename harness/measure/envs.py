"""How one stack's environment is described and installed: pins, indexes, torch backend.

uv reads its own environment variables (UV_FIND_LINKS, UV_INDEX_URL, UV_CACHE_DIR, ...),
so a local wheelhouse works without anything here knowing about it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from harness.config.matrix import Stack

# Enough of the installer's output to explain a failed solve in a record.
MESSAGE_TAIL = 1500


@dataclass(frozen=True)
class InstallResult:
    ok: bool
    command: tuple[str, ...]
    output: str

    @property
    def message(self) -> str:
        lines = [ln for ln in self.output.strip().splitlines() if ln.strip()]
        text = " | ".join(lines[-12:])
        return text[-MESSAGE_TAIL:]


def find_uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin  # noqa: PLC0415 - optional: the uv wheel ships its binary
    except ImportError:
        return None
    return str(find_uv_bin())


def venv_python(location: Path) -> Path:
    return location / "bin" / "python"


def install_command(stack: Stack, python: Path, uv: str | None) -> list[str]:
    """One command, one solve: torch, transformers, accelerate and the pins together."""
    if uv:
        cmd = [uv, "pip", "install", "--python", str(python)]
        if stack.torch_backend:
            cmd.append(f"--torch-backend={stack.torch_backend}")
    else:
        cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    for link in stack.find_links:
        cmd += ["--find-links", link]
    if stack.index_url:
        cmd += ["--index-url", stack.index_url]
    cmd += list(stack.requirements())
    return cmd


def existing(python: Path) -> InstallResult:
    """An existing environment installs nothing; it only has to be an interpreter."""
    if not (python.is_file() and os.access(python, os.X_OK)):
        return InstallResult(ok=False, command=(), output=f"{python}: no such interpreter")
    return InstallResult(ok=True, command=(), output="")


def install(stack: Stack, python: Path, log: Path, *, timeout_s: float = 3600) -> InstallResult:
    uv = find_uv()
    cmd = install_command(stack, python, uv)
    note = ""
    if not uv and stack.torch_backend:
        note = f"uv not found: pip ignores torch_backend={stack.torch_backend}\n"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        output = note + proc.stdout + proc.stderr
        ok = proc.returncode == 0
    except subprocess.TimeoutExpired as exc:
        output = note + f"install timed out after {timeout_s:.0f} s: {exc}"
        ok = False
    except OSError as exc:
        output = note + f"could not start the installer: {exc}"
        ok = False
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(" ".join(cmd) + "\n" + output, encoding="utf-8")
    return InstallResult(ok=ok, command=tuple(cmd), output=output)
