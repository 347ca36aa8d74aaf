"""Host side: starts workers in a stack's environment, enforces timeouts, writes records.

Nothing one cell does can stop the others: every outcome, a crash, a hang or a kill,
becomes a record, and the run goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness import golden, results

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from harness.matrix import Cell, Model, Stack

WORKER = Path(__file__).with_name("worker.py")
PRESETS = Path(__file__).parent / "fixtures" / "presets.py"
FIXTURES = Path(__file__).parent / "fixtures"
# -I keeps the script's folder off sys.path: harness/ must never shadow a stdlib module in
# the target environment (a harness/bisect.py once replaced `bisect` there). -u: unbuffered.
ISOLATED = ("-I", "-u")
# The worker's environment is an allow-list: tokens and the like never reach a record.
ENV_ALLOW = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER", "LOGNAME",
    "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE", "HF_HOME", "HF_HUB_CACHE", "PYTORCH_CUDA_ALLOC_CONF", "LD_LIBRARY_PATH",
)  # fmt: skip
HUB_ONLY_ENV = ("HF_TOKEN", "HF_ENDPOINT", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")


class WorkerStartError(Exception):
    """The stack's interpreter could not import torch/transformers or start at all."""


@dataclass(frozen=True)
class RunConfig:
    run_id: str
    run_dir: Path
    mode: str
    timeout_s: float
    repeats: int
    cache_dir: Path
    sample_interval_s: float = 0.002
    judge: golden.Judge | None = None
    resume: bool = False


@dataclass(frozen=True)
class Exit:
    """How a worker process ended."""

    code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    note: str = ""


def default_cache_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "harness"


def worker_env(python: Path, *, hub: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOW}
    if hub:
        env.update({k: v for k, v in os.environ.items() if k in HUB_ONLY_ENV})
    else:
        # Embedded and local models must never reach the network.
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # tokenizers' thread pool does not survive fork; the harness forks on purpose.
    env["TOKENIZERS_PARALLELISM"] = "false"
    # Asking whether CUDA exists must not initialise it in a parent that forks.
    env["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    return env


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])[-1500:]


class ForkServer:
    """One worker per stack that imports torch+transformers once and forks a child per run."""

    def __init__(
        self, python: Path, env: dict[str, str], log: IO[str], start_timeout_s: float
    ) -> None:
        self.python = python
        self.env = env
        self.log = log
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.import_s: float | None = None
        self.child: int | None = None
        self._buffer = b""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.python), *ISOLATED, str(WORKER), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=self.env,
            start_new_session=True,
        )
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
        data: dict[str, Any] = json.loads(line)
        return data

    def run(self, job: Path, out: Path, timeout_s: float) -> Exit:
        if not self.alive():
            self.start()
        assert self.proc is not None  # noqa: S101
        assert self.proc.stdin is not None  # noqa: S101
        started = time.monotonic()
        try:
            self.proc.stdin.write(json.dumps({"job": str(job), "out": str(out)}).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            return Exit(note="the fork-server died before the run started")
        first = self._read(timeout_s)
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
    python: Path, env: dict[str, str], log: IO[str], job: Path, out: Path, timeout_s: float
) -> Exit:
    """A fresh interpreter per run: the slow but simplest mode, kept as a switch."""
    proc = subprocess.Popen(
        [str(python), *ISOLATED, str(WORKER), "run", "--job", str(job), "--out", str(out)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
        start_new_session=True,
    )
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
        return Exit(signal=signal.SIGKILL, timed_out=True)
    if code < 0:
        return Exit(signal=-code)
    return Exit(code=code)


def _phase(path: Path | None) -> str:
    """The phase the worker last announced, as ' during load', or ''."""
    try:
        text = path.read_text(encoding="utf-8").split() if path else []
    except OSError:
        return ""
    return f" during {text[-1]}" if text else ""


def classify(
    exit_: Exit, out: Path, timeout_s: float, phase_file: Path | None = None
) -> tuple[str, str, dict[str, Any]]:
    """Status, message and the worker's result (possibly empty) for one run."""
    result: dict[str, Any] = {}
    during = _phase(phase_file)
    if out.exists():
        try:
            result = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            return "error", f"unreadable worker result: {exc}", {}
    if exit_.timed_out:
        return "timeout", f"no result within {timeout_s:g} s{during}; the worker was killed", result
    if exit_.signal is not None:
        name = (
            signal.Signals(exit_.signal).name
            if exit_.signal in {s.value for s in signal.Signals}
            else str(exit_.signal)
        )
        hint = " (the kernel's OOM killer sends SIGKILL)" if exit_.signal == signal.SIGKILL else ""
        note = f": {exit_.note}" if exit_.note else ""
        return "killed", f"worker killed by {name}{during}{hint}{note}", result
    if not result:
        note = exit_.note or f"worker exited with code {exit_.code}{during} and wrote no result"
        return "error", note, result
    status = str(result.get("status", "error"))
    if status not in results.STATUSES:
        return "error", f"worker reported unknown status {status!r}", result
    return status, str(result.get("message", "")), result


@dataclass(frozen=True)
class ModelPaths:
    model: str
    tokenizer: str


def fixture_dir(name: str) -> Path:
    return FIXTURES / name.replace("-", "_")


def resolve_model(model: Model, fmt: str, python: Path, cache: Path, log: IO[str]) -> ModelPaths:
    """Where from_pretrained should look; builds a preset into the cache on first use."""
    sub = "st" if fmt == "safetensors" else "bin"
    if model.source == "embedded":
        folder = fixture_dir(model.location) / sub
        return ModelPaths(str(folder), str(folder))
    if model.source == "preset":
        folder = cache / "presets" / model.location
        if not (folder / "manifest.json").exists():
            log.write(f"building preset {model.location} into {folder}\n")
            log.flush()
            subprocess.run(
                [
                    str(python), *ISOLATED, str(PRESETS), "build", model.location,
                    "--cache", str(cache / "presets"),
                    "--tokenizer", str(fixture_dir("tiny-gpt2") / "st"),
                ],
                check=True, stdout=log, stderr=log, env=worker_env(python, hub=False),
            )  # fmt: skip
        return ModelPaths(str(folder / sub), str(folder / sub))
    # local paths and hub ids go to from_pretrained as given
    return ModelPaths(model.location, model.location)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weight_files(model: Model, cache: Path) -> list[Path]:
    """The files whose hash identifies the model's weights (none for hub ids)."""
    if model.source == "embedded":
        folder = fixture_dir(model.location)
        return [folder / "st" / "model.safetensors", folder / "bin" / "pytorch_model.bin"]
    if model.source == "preset":
        # The .bin is written by whichever torch builds the preset, so its bytes vary with
        # torch's pickle format; the safetensors file is the deterministic one.
        return [cache / "presets" / model.location / "st" / "model.safetensors"]
    if model.source == "local":
        folder = Path(model.location)
        return (
            sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
            if folder.is_dir()
            else []
        )
    return []


def stack_environment(python: Path, env: dict[str, str], raw: Path, stack: Stack) -> dict[str, Any]:
    """Versions and the frozen package list, read inside the stack's own environment."""
    out = raw / f"{stack.id}.env.json"
    proc = subprocess.run(
        [str(python), *ISOLATED, str(WORKER), "env", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not out.exists():
        raise WorkerStartError(f"could not read the environment: {proc.stderr.strip()[-800:]}")
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    (raw / f"{stack.id}.freeze.txt").write_text(
        "\n".join(data["packages"]) + "\n", encoding="utf-8"
    )
    return data


def run_stack(
    stack: Stack,
    cells: Sequence[Cell],
    python: Path,
    cfg: RunConfig,
    progress: Callable[[int, int, Cell, int, dict[str, Any] | None], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every (cell, repeat) of one stack and append a record for each."""
    cells = [c for c in cells if c.stack.id == stack.id]
    raw = cfg.run_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    jsonl = raw / f"{stack.id}.jsonl"
    hub = any(c.model.source == "hub" for c in cells)
    env = worker_env(python, hub=hub)
    records: list[dict[str, Any]] = []
    # On --resume, (cell, repeat) pairs already on disk are done; an interrupted run wrote
    # nothing for the cell it was in, so exactly the missing ones run again.
    done = (
        {(r["cell_id"], r["repeat"]) for r in results.read(jsonl)}
        if cfg.resume and jsonl.exists()
        else set()
    )
    total = len(cells) * cfg.repeats - len(done)

    hashes: dict[str, str | None] = {}

    def emit(
        cell: Cell, repeat: int, outcome: results.Outcome, stack_env: dict[str, Any] | None
    ) -> None:
        record = results.build_record(
            run_id=cfg.run_id,
            cell=cell,
            repeat=repeat,
            mode=cfg.mode,
            outcome=outcome,
            env=stack_env,
        )
        if outcome.status == "ok":
            if cell.model.id not in hashes:
                hashes[cell.model.id] = golden.weights_sha256(
                    weight_files(cell.model, cfg.cache_dir)
                )
            record["weights_sha256"] = hashes[cell.model.id]
        if cfg.judge is not None:
            record.update(cfg.judge.judge(record))
        results.append(jsonl, record)
        records.append(record)
        if progress is not None:
            progress(len(records), total, cell, repeat, record)

    def fail_all(
        status: str, message: str, stack_env: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        for repeat in range(cfg.repeats):
            for cell in cells:
                if (cell.id, repeat) not in done:
                    emit(cell, repeat, results.Outcome(status, message, {}, 0.0), stack_env)
        return records

    log_path = raw / f"{stack.id}.log"
    with (
        log_path.open("a", encoding="utf-8") as log,
        tempfile.TemporaryDirectory(prefix="harness-") as tmp,
    ):
        try:
            stack_env = stack_environment(python, env, raw, stack)
        except (WorkerStartError, subprocess.TimeoutExpired, OSError) as exc:
            return fail_all("error", str(exc), None)
        server: ForkServer | None = None
        if cfg.mode == "forkserver":
            server = ForkServer(python, env, log, start_timeout_s=cfg.timeout_s)
            try:
                server.start()
            except WorkerStartError:
                log.flush()
                return fail_all("error", f"import failed: {_tail(log_path)}", stack_env)
        paths: dict[tuple[str, str], ModelPaths | str] = {}
        try:
            # Repeats go round-robin so slow drift of the machine spreads over all cells.
            for repeat in range(cfg.repeats):
                for index, cell in enumerate(cells):
                    if (cell.id, repeat) in done:
                        continue
                    key = (cell.model.id, cell.scenario.checkpoint_format)
                    if key not in paths:
                        try:
                            paths[key] = resolve_model(
                                cell.model,
                                cell.scenario.checkpoint_format,
                                python,
                                cfg.cache_dir,
                                log,
                            )
                        except (subprocess.CalledProcessError, OSError) as exc:
                            paths[key] = (
                                f"could not prepare model {cell.model.id}: {exc}; see {log_path}"
                            )
                    where = paths[key]
                    if isinstance(where, str):
                        emit(cell, repeat, results.Outcome("error", where, {}, 0.0), stack_env)
                        continue
                    job = {
                        "model_path": where.model,
                        "tokenizer_path": where.tokenizer,
                        "prompts": list(cell.model.prompts),
                        "low_cpu_mem_usage": cell.scenario.low_cpu_mem_usage,
                        "device_map": cell.scenario.device_map,
                        "dtype": cell.scenario.dtype,
                        "checkpoint_format": cell.scenario.checkpoint_format,
                        "max_new_tokens": cell.scenario.max_new_tokens,
                        "trust_remote_code": cell.model.trust_remote_code,
                        "revision": cell.model.revision,
                        "sample_interval_s": cfg.sample_interval_s,
                    }
                    # "<pid> <phase>" of the run in flight, for users watching and for messages.
                    phase_file = raw / f"{stack.id}.phase"
                    phase_file.unlink(missing_ok=True)
                    job["phase_file"] = str(phase_file)
                    job_path = Path(tmp) / f"job-{repeat}-{index}.json"
                    out_path = Path(tmp) / f"out-{repeat}-{index}.json"
                    job_path.write_text(json.dumps(job), encoding="utf-8")
                    if progress is not None:
                        progress(len(records), total, cell, repeat, None)
                    log.write(f"--- {cell.id} repeat {repeat}\n")
                    log.flush()
                    started = time.monotonic()
                    if server is not None:
                        try:
                            exit_ = server.run(job_path, out_path, cfg.timeout_s)
                        except WorkerStartError:
                            exit_ = Exit(
                                note=f"the fork-server could not restart: {_tail(log_path)}"
                            )
                    else:
                        exit_ = run_fresh(python, env, log, job_path, out_path, cfg.timeout_s)
                    status, message, result = classify(exit_, out_path, cfg.timeout_s, phase_file)
                    if server is not None and result and result.get("import_s") is None:
                        result["import_s"] = server.import_s
                    wall = time.monotonic() - started
                    emit(cell, repeat, results.Outcome(status, message, result, wall), stack_env)
        finally:
            if server is not None:
                server.close()
            (raw / f"{stack.id}.phase").unlink(missing_ok=True)
    return records
