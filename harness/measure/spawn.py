"""Worker processes (a fork-server per stack, or a fresh interpreter per run): start them,
talk to them, stop them, and say how they ended. The result travels in a file."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, cast

from harness import metrics, paths

if TYPE_CHECKING:
    from pathlib import Path

    from harness.measure.budget import Budget
    from harness.metrics import Status
    from harness.target.contract import Result

# -I keeps the script's folder off sys.path, so harness/ never shadows a stdlib module in the
# target environment. -u: unbuffered.
ISOLATED = ("-I", "-u")
# The worker's environment is an allow-list: tokens and the like never reach a record.
ENV_ALLOW = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER", "LOGNAME",
    "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE", "HF_HOME", "HF_HUB_CACHE", "PYTORCH_CUDA_ALLOC_CONF", "LD_LIBRARY_PATH",
)  # fmt: skip
# A hub model's worker gets the user's own network settings, offline switches included.
HUB_ONLY_ENV = ("HF_TOKEN", "HF_ENDPOINT", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
                "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # fmt: skip


class WorkerStartError(Exception):
    """The stack's interpreter could not import torch/transformers or start at all."""


@dataclass(frozen=True)
class Exit:
    """How a worker process ended."""

    code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    note: str = ""


def worker_env(python: Path, *, hub: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOW}
    if hub:
        env.update({k: v for k, v in os.environ.items() if k in HUB_ONLY_ENV})
    else:
        # Embedded and local models must never reach the network.
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    # tokenizers' thread pool does not survive fork; the harness forks on purpose.
    env["TOKENIZERS_PARALLELISM"] = "false"
    # Asking whether CUDA exists must not initialise it in a parent that forks.
    env["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    return env


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])[-1500:]


@dataclass(eq=False)
class ForkServer:
    """One worker per stack that imports torch+transformers once and forks a child per run."""

    python: Path
    env: dict[str, str]
    log: IO[str]
    start_timeout_s: float
    proc: subprocess.Popen[bytes] | None = None
    import_s: float | None = None
    child: int | None = None
    _buffer: bytes = b""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.python), *ISOLATED, str(paths.WORKER), "serve"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, env=self.env, start_new_session=True,
        )  # fmt: skip
        self._buffer = b""
        reply = self._read(self.start_timeout_s)
        if reply is None or not reply.get("ready"):
            self.close()
            raise WorkerStartError("the worker did not start")
        self.import_s = float(reply["import_s"])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _read(self, timeout_s: float) -> dict[str, Any] | None:
        """The next control line, or None on EOF or timeout."""
        assert self.proc is not None  # noqa: S101 - internal invariant
        assert self.proc.stdout is not None  # noqa: S101
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return cast("dict[str, Any]", json.loads(line))

    def run(self, job: Path, out: Path, timeout_s: float) -> Exit:
        if not self.alive():
            self.start()
        assert self.proc is not None  # noqa: S101
        assert self.proc.stdin is not None  # noqa: S101
        started = time.monotonic()
        try:
            self.proc.stdin.write(json.dumps({"job": str(job), "out": str(out)}).encode() + b"\n")
            self.proc.stdin.flush()
            first = self._read(timeout_s)
        except BrokenPipeError:
            first = None
        if first is None or "started" not in first:
            self.close()
            return Exit(note="the fork-server died before the run started")
        pid = self.child = int(first["started"])
        left = max(0.1, timeout_s - (time.monotonic() - started))
        reply = self._read(left)
        if reply is None and self.alive():
            _kill_group(pid)
            reply = self._read(30)
            if reply is not None:
                self.child = None
                return Exit(signal=reply.get("signal"), timed_out=True)
            self.close()
            return Exit(timed_out=True, note="the child did not die after SIGKILL")
        if reply is None:
            # The server itself died (e.g. the OOM killer picked it): restart next time.
            self.close()
            return Exit(signal=signal.SIGKILL, note="the fork-server was killed during the run")
        self.child = None
        return Exit(code=reply.get("exit"), signal=reply.get("signal"))

    def close(self) -> None:
        if self.child is not None:
            # Interrupted mid-run (Ctrl-C): the child has its own process group; end it too.
            _kill_group(self.child)
            self.child = None
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None  # noqa: S101
            self.proc.stdin.write(b'{"quit": true}\n')
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid)
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_fresh(
    python: Path,
    *,
    env: dict[str, str],
    log: IO[str],
    job: Path,
    out: Path,
    timeout_s: float,
    budget: Budget | None = None,
) -> Exit:
    """A fresh interpreter per run; under a budget it joins the cap before exec, imports too."""
    cmd = [str(python), *ISOLATED, str(paths.WORKER), "run", "--job", str(job), "--out", str(out)]
    if budget is not None:
        cmd = budget.wrap(cmd)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
    )
    if budget is not None:
        budget.started(proc.pid)
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
        return Exit(signal=signal.SIGKILL, timed_out=True)
    if code < 0:
        return Exit(signal=-code)
    return Exit(code=code)


def phase_note(path: Path | None) -> str:
    """The phase the worker last announced, as ' during load', or ''."""
    try:
        text = path.read_text(encoding="utf-8").split() if path else []
    except OSError:
        return ""
    return f" during {text[-1]}" if text else ""


def classify(
    exit_: Exit, out: Path, timeout_s: float, phase_file: Path | None = None
) -> tuple[Status, str, Result]:
    """Status, message and the worker's result (possibly empty) for one run."""
    result: Result = {}
    during = phase_note(phase_file)
    if out.exists():
        try:
            result = cast("Result", json.loads(out.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            return "error", f"unreadable worker result: {exc}", {}
    if exit_.timed_out:
        return "timeout", f"no result within {timeout_s:g} s{during}; the worker was killed", result
    if exit_.signal is not None:
        name = str(exit_.signal)
        with contextlib.suppress(ValueError):
            name = signal.Signals(exit_.signal).name
        hint = " (the kernel's OOM killer sends SIGKILL)" if exit_.signal == signal.SIGKILL else ""
        note = f": {exit_.note}" if exit_.note else ""
        return "killed", f"worker killed by {name}{during}{hint}{note}", result
    if not result:
        note = exit_.note or f"worker exited with code {exit_.code}{during} and wrote no result"
        return "error", note, result
    status = str(result.get("status", "error"))
    if status in metrics.STATUSES:
        return status, str(result.get("message", "")), result
    return "error", f"worker reported unknown status {status!r}", result
