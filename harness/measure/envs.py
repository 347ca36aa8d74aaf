"""How one stack's environment is installed: pins, indexes, torch backend, wheel sources. uv reads
its UV_* variables but not pip's configuration: without those, `pip config list`'s find-links are
passed to uv, so a wheelhouse set up for pip works for uv too."""

from __future__ import annotations

import ast
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from harness.config.matrix import Stack

# Enough of the installer's output to explain a failed solve in a record.
MESSAGE_TAIL = 1500
UV_SOURCE_VARS = ("UV_FIND_LINKS", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX",
                  "UV_DEFAULT_INDEX")  # fmt: skip
# pip's own precedence: its PIP_* variables, then the install command's section, then global.
_PIP_SECTIONS = (":env:", "install", "global")


@dataclass(frozen=True)
class WheelSources:
    origin: Literal["uv env", "pip config", "defaults"]
    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()

    def uv_args(self) -> list[str]:
        # Only pip's find-links: uv takes a package from the first index that has it (a file://
        # index holding one transformers release hides the others), pip merges every index.
        if self.origin != "pip config":
            return []
        return [arg for link in self.find_links for arg in ("--find-links", link)]

    def as_json(self) -> dict[str, object]:
        return {
            "find_links": list(self.find_links),
            "index_url": self.index_url,
            "extra_index_urls": list(self.extra_index_urls),
            "from": self.origin,
            "uv_args": self.uv_args(),
        }


def parse_pip_config(text: str) -> dict[str, str]:
    """`pip config list` output (`global.find-links='a b'`) as {"global.find-links": "a b"}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or "." not in key:
            continue
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed = value.strip()
        out[key.strip()] = str(parsed)
    return out


def _pip_value(config: Mapping[str, str], name: str) -> str | None:
    return next((config[k] for s in _PIP_SECTIONS if (k := f"{s}.{name}") in config), None)


def _usable_link(link: str) -> bool:
    """A URL, or a folder that exists here (pip skips missing ones; uv refuses them)."""
    if link.startswith("file://"):
        return Path(link.removeprefix("file://")).is_dir()
    return "://" in link or Path(link).expanduser().is_dir()


def sources_from(environ: Mapping[str, str], pip_config: str | None) -> WheelSources:
    """uv's own variables win; else pip's configuration (`pip config list`); else defaults."""
    if any(environ.get(v) for v in UV_SOURCE_VARS):
        index = environ.get("UV_DEFAULT_INDEX") or environ.get("UV_INDEX_URL") or None
        extra = f"{environ.get('UV_INDEX', '')} {environ.get('UV_EXTRA_INDEX_URL', '')}"
        return WheelSources(
            "uv env", tuple(environ.get("UV_FIND_LINKS", "").split()), index, tuple(extra.split())
        )
    config = parse_pip_config(pip_config or "")
    links = tuple(x for x in (_pip_value(config, "find-links") or "").split() if _usable_link(x))
    index = _pip_value(config, "index-url")
    extras = tuple((_pip_value(config, "extra-index-url") or "").split())
    if not (links or index or extras):
        return WheelSources("defaults")
    return WheelSources("pip config", links, index, extras)


@functools.cache
def pip_config_list() -> str | None:
    """`pip config list` of this interpreter's pip, or of the pip on PATH; None without pip."""
    commands = [[sys.executable, "-m", "pip"]]
    if pip := shutil.which("pip3") or shutil.which("pip"):
        commands.append([pip])
    for cmd in commands:
        try:
            proc = subprocess.run(
                [*cmd, "config", "list"], capture_output=True, text=True, timeout=60, check=False,
                env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0:
            return proc.stdout
    return None


def wheel_sources(environ: Mapping[str, str] | None = None) -> WheelSources:
    environ = os.environ if environ is None else environ
    uv_own = any(environ.get(v) for v in UV_SOURCE_VARS)
    return sources_from(environ, None if uv_own else pip_config_list())  # pip is asked only then


@dataclass(frozen=True)
class InstallResult:
    ok: bool
    command: tuple[str, ...]
    output: str

    @property
    def message(self) -> str:
        lines = [ln for ln in self.output.strip().splitlines() if ln.strip()]
        return " | ".join(lines[-12:])[-MESSAGE_TAIL:]


def find_uv() -> str | None:
    if found := shutil.which("uv"):
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
        cmd = [uv, "pip", "install", "--python", str(python), *wheel_sources().uv_args()]
        if stack.torch_backend:
            cmd.append(f"--torch-backend={stack.torch_backend}")
    else:  # pip reads its own configuration
        cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    for link in stack.find_links:
        cmd += ["--find-links", link]
    if stack.index_url:
        cmd += ["--index-url", stack.index_url]
    cmd += list(stack.requirements())
    return cmd


def existing(python: Path) -> InstallResult:
    """An existing environment installs nothing; it only has to be an interpreter."""
    ok = python.is_file() and os.access(python, os.X_OK)
    return InstallResult(ok=ok, command=(), output="" if ok else f"{python}: no such interpreter")


def install(stack: Stack, python: Path, log: Path, *, timeout_s: float = 3600) -> InstallResult:
    uv = find_uv()
    cmd = install_command(stack, python, uv)
    note = ""
    if not uv and stack.torch_backend:
        note = f"uv not found: pip ignores torch_backend={stack.torch_backend}\n"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        ok, output = proc.returncode == 0, note + proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        ok, output = False, note + f"install timed out after {timeout_s:.0f} s: {exc}"
    except OSError as exc:
        ok, output = False, note + f"could not start the installer: {exc}"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(" ".join(cmd) + "\n" + output, encoding="utf-8")
    return InstallResult(ok=ok, command=tuple(cmd), output=output)
