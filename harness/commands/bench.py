"""`harness bench`: the bench options (nox's posargs too), the run folder and its manifest.
`nox -s bench` installs the stacks and calls the same functions."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from harness import paths, provenance, usage
from harness import records as rec
from harness.commands import (
    add_matrix,
    checked,
    command,
    entry,
    load_matrix,
    positive_float,
    positive_int,
)
from harness.config import matrix as matrix_mod
from harness.decide import releases
from harness.golden import store as golden
from harness.measure import budget, envs, runner, shards
from harness.report.console import finish_run
from harness.report.store import ingest_quietly

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

UsageError = usage.UsageError
# A folder given to --models has no prompts in matrix.yaml: it gets these.
FOLDER_PROMPTS = ("The quick brown fox",)


@dataclass(frozen=True)
class BenchArgs:
    """The bench options; each field but run_id is the parser's option of that name."""

    profile: str = "default"
    models: tuple[str, ...] | None = None
    stacks: tuple[str, ...] | None = None
    repeats: int | None = None
    out: Path | None = None
    mode: str | None = None
    timeout_s: float | None = None
    strict_golden: bool = False
    run_id: str | None = None
    resume: Path | None = None
    memory_budget: int | None = None
    fit: bool = False
    shard: tuple[int, int] | None = None
    interleave: bool = False
    folders: tuple[Path, ...] = ()  # --models items that are model folders, not matrix ids


def _ids(text: str) -> tuple[str, ...]:
    ids = tuple(i.strip() for i in text.split(",") if i.strip())
    if not ids:
        raise ValueError("expected one or more comma-separated ids")
    return ids


def bench_options() -> usage.Parser:
    p = usage.Parser(prog="nox -s bench --", add_help=False)
    p.add_argument("--profile", default="default", help="smoke, default or full")
    p.add_argument(
        "--models", type=checked(_ids), help="model ids or model folders, comma-separated"
    )
    p.add_argument("--stacks", type=checked(_ids), help="stack ids, comma-separated")
    p.add_argument("--repeats", type=positive_int)
    p.add_argument("--out", type=Path, help="run folder (default reports/<run-id>)")
    p.add_argument("--mode", choices=("forkserver", "fresh"))
    p.add_argument("--timeout", dest="timeout_s", type=positive_float)
    p.add_argument("--strict-golden", action="store_true", help="golden drift fails the run")
    p.add_argument("--resume", type=Path, help="finish an interrupted run folder")
    p.add_argument(
        "--memory-budget", type=checked(budget.parse_size), help="hard cap per run, e.g. 2GiB"
    )
    p.add_argument("--fit", action="store_true", help="find the smallest cap each cell fits in")
    p.add_argument(
        "--shard", type=checked(shards.parse_shard), help="I/N: this machine's slice of the cells"
    )
    p.add_argument(
        "--interleave", action="store_true",
        help="one run of each stack in turn, so machine drift falls on all stacks alike",
    )  # fmt: skip
    p.add_argument(
        "--refresh", action="store_true",
        help="ask the index again for the releases sweeps pick (else the cached listing)",
    )  # fmt: skip
    return p


def _resumed(args: BenchArgs, matrix: matrix_mod.Matrix) -> BenchArgs:
    """The interrupted run's own options: a resumed run must select the same cells."""
    run_dir = cast("Path", args.resume)
    given = [f"--{k}" for k in ("profile", "models", "stacks", "repeats", "out")
             if getattr(args, k) not in (None, "default")]  # fmt: skip
    if given:
        raise UsageError(f"--resume takes the run's own options; drop {', '.join(given)}")
    try:
        data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{run_dir}: not a run folder (no readable run.json)") from None
    models = tuple(data["models"]) if data.get("models") else None
    stacks = tuple(data["stacks"]) if data.get("stacks") else None
    folders = tuple(Path(f) for f in data.get("model_folders") or ())
    try:
        now = cells_sha256(with_folders(matrix, folders), data["profile"], models, stacks)
    except matrix_mod.MatrixError as exc:
        raise UsageError(f"cannot resume {run_dir}: {exc}") from None
    if data.get("cells_sha256") != now:
        # Other cells (or other pins) would make one run out of two different selections.
        raise UsageError(f"the cells of {matrix.path} changed since run {data.get('run_id')}")
    if data.get("worker_sha256") != provenance.worker_sha256():
        # Figures of two worker versions would be averaged as one measurement.
        made = data.get("worker_sha256") or "an older harness"
        raise UsageError(
            f"run {data.get('run_id')} was measured by worker {made}, this checkout's is "
            f"{provenance.worker_sha256()}: start a new run instead of --resume"
        )
    return dataclasses.replace(
        args, profile=data["profile"], models=models, stacks=stacks, repeats=data.get("repeats"),
        out=run_dir, mode=args.mode or data.get("mode"), run_id=data["run_id"], shard=None,
        folders=folders,
    )  # fmt: skip


def cells_sha256(
    matrix: matrix_mod.Matrix,
    profile: str,
    models: Sequence[str] | None,
    stacks: Sequence[str] | None,
) -> str:
    """Identifies a run's selection: the cells and every stack's pins."""
    cells = matrix.cells(profile, models=models, stacks=stacks)
    text = json.dumps(sorted([c.stack.id, *c.stack.requirements(), c.id] for c in cells))
    return hashlib.sha256(text.encode()).hexdigest()


def ensure_writable(run_dir: Path) -> None:
    """Fail before installing anything when results could not be written."""
    probe = run_dir / "raw" / f".probe-{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{run_dir}: cannot write results there ({exc.strerror})") from None


def parse_bench_args(argv: Sequence[str], matrix: matrix_mod.Matrix) -> BenchArgs:
    return bench_args(bench_options().parse_args(list(argv)), matrix)


def bench_args(ns: argparse.Namespace, matrix: matrix_mod.Matrix) -> BenchArgs:
    """Checked bench options from parsed ones (nox's posargs or `python -m harness bench`)."""
    args = BenchArgs(**{f.name: getattr(ns, f.name) for f in fields(BenchArgs) if f.name in ns})
    if args.resume is not None:
        return _resumed(args, matrix)
    if args.models:
        folders = tuple(Path(m) for m in args.models if _is_folder(m))
        named = tuple(m for m in args.models if not _is_folder(m))
        ids = tuple(m.id for m in folder_models(matrix, folders))
        args = dataclasses.replace(args, models=(*named, *ids), folders=folders)
        matrix = with_folders(matrix, folders)
    if (args.memory_budget or args.fit) and args.mode == "forkserver":
        # A forked child cannot be charged for the imports its parent did.
        raise UsageError("--memory-budget and --fit run fresh interpreters; drop --mode forkserver")
    # Unknown profile, model or stack ids are caught here, before anything is installed.
    try:
        matrix.cells(args.profile, models=args.models, stacks=args.stacks)
    except matrix_mod.MatrixError as exc:
        raise UsageError(str(exc)) from None
    return args


def _is_folder(item: str) -> bool:
    # Matrix ids never hold a "/": a path is what a user types for a folder.
    return "/" in item or item.startswith(("~", ".")) or Path(item).is_dir()


def folder_models(matrix: matrix_mod.Matrix, folders: Sequence[Path]) -> list[matrix_mod.Model]:
    """A model per folder, with a readable id from its name; one line if it is no model."""
    taken = {m.id for m in matrix.models}
    found = []
    for given in folders:
        folder = given.expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise UsageError(f"{given}: not a model folder (no config.json in {folder})")
        name = re.sub(r"[^A-Za-z0-9._+-]+", "-", folder.name).strip("-._+") or "model"
        if name in taken:
            name = f"{name}-{hashlib.sha256(str(folder).encode()).hexdigest()[:6]}"
        taken.add(name)
        found.append(matrix_mod.Model(name, "local", str(folder), FOLDER_PROMPTS))
    return found


def with_folders(matrix: matrix_mod.Matrix, folders: Sequence[Path]) -> matrix_mod.Matrix:
    """The matrix with the folder models added, to every profile that lists its models."""
    if not folders:
        return matrix
    added = folder_models(matrix, folders)
    ids = tuple(m.id for m in added)
    profiles = {
        name: p.model_copy(update={"models": (*p.models, *ids)}) if p.models else p
        for name, p in matrix.profiles.items()
    }
    return dataclasses.replace(
        matrix, models=(*matrix.models, *added), profiles=MappingProxyType(profiles)
    )


def run_config(args: BenchArgs, matrix: matrix_mod.Matrix, run_id: str) -> runner.RunConfig:
    """How this invocation runs; raises GoldenError for a broken expectations file."""
    run_id = args.run_id or run_id
    return runner.RunConfig(
        run_id=run_id,
        run_dir=args.out if args.out is not None else paths.REPORTS / run_id,
        # Capped runs are charged from their first page on: a fresh interpreter each.
        mode="fresh" if args.memory_budget or args.fit else args.mode or matrix.settings.mode,
        timeout_s=args.timeout_s or matrix.settings.timeout_s,
        repeats=args.repeats or matrix.repeats(args.profile),
        cache_dir=runner.default_cache_dir(),
        judge=golden.Judge.open(golden.GOLDENS, matrix.settings.golden_tolerance),
        resume=args.resume is not None,
        memory_budget=args.memory_budget,
        fit=args.fit,
        threads=matrix.settings.threads,
        interop_threads=matrix.settings.interop_threads,
    )


def select(
    matrix: matrix_mod.Matrix, args: BenchArgs, stack_id: str | None = None
) -> list[matrix_mod.Cell]:
    """The cells this invocation runs: profile, --models, --stacks, then --shard."""
    matrix = with_folders(matrix, args.folders)
    cells = matrix.cells(args.profile, models=args.models, stacks=args.stacks)
    if args.shard is not None:
        # Sharded over the whole selection, so N machines cover it exactly once.
        cells = shards.shard(cells, *args.shard)
    return [c for c in cells if stack_id is None or c.stack.id == stack_id]


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S")


def point_latest(run_dir: Path) -> None:
    """reports/latest -> the newest run, swapped atomically with a rename."""
    run_dir = run_dir.resolve()
    if run_dir.parent != paths.REPORTS.resolve():
        return
    tmp = paths.REPORTS / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    tmp.replace(paths.REPORTS / "latest")


def write_manifest(
    run_dir: Path,
    matrix_path: Path,
    matrix: matrix_mod.Matrix,
    args: BenchArgs,
    run_id: str,
    **extra: object,
) -> None:
    """run.json; `matrix` is the one loaded from `matrix_path`, its sweeps resolved."""
    path = run_dir / "run.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if matrix.sweeps:  # which releases the index offered, and when it was asked
        data["releases_listed_at"] = releases.listed_at("transformers")
    data.update(
        run_id=run_id, schema_version=rec.SCHEMA_VERSION, command=sys.argv,
        matrix=str(matrix_path), matrix_sha256=hashlib.sha256(matrix_path.read_bytes()).hexdigest(),
        cells_sha256=cells_sha256(with_folders(matrix, args.folders),
                                  args.profile, args.models, args.stacks),
        model_folders=[str(f) for f in args.folders],
        profile=args.profile, models=args.models, stacks=args.stacks,
        harness_version=provenance.harness_version(), worker_sha256=provenance.worker_sha256(),
        # Where uv looked for wheels: the index, a wheelhouse, pip's configuration.
        wheel_sources=envs.wheel_sources().as_json(), **extra,
    )  # fmt: skip
    data.setdefault("started_at", dt.datetime.now(dt.timezone.utc).isoformat())
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


record_install_error = runner.record_install_error


def bench_existing(ns: argparse.Namespace) -> int:
    """`python -m harness bench`: for machines without nox or uv (a GPU box, a team's image)."""
    from harness.measure import progress  # noqa: PLC0415 - only this command draws progress

    if getattr(ns, "launcher", "local") == "slurm":
        return bench_launched(ns)
    m = load_matrix(ns.matrix, refresh=ns.refresh)
    args = bench_args(ns, m)
    cfg = run_config(args, m, new_run_id())
    start_run(cfg, ns.matrix, m, args)
    run_dir = cfg.run_dir
    plans = []
    for stack in m.stacks:
        cells = select(m, args, stack.id)
        if not cells:
            continue
        if stack.install:
            print(f"skipped {stack.id}: it installs an environment; use nox -s bench-{stack.id}")
            continue
        plans.append((stack, cells, Path(stack.python)))
    if not plans:
        raise UsageError("no existing-environment stack (install: false) selected")
    for batch in [plans] if args.interleave else [[p] for p in plans]:
        with progress.reporter(" + ".join(s.id for s, _, _ in batch)) as report:
            runner.run_stacks(batch, cfg, progress=report)
    if not getattr(ns, "launched_shard", False):  # a launched run is stored once, merged
        ingest_quietly(run_dir, paths.store_dir())  # history; a failure only warns
    return finish_run(run_dir, strict_golden=args.strict_golden)


def start_run(
    cfg: runner.RunConfig,
    matrix_path: Path,
    matrix: matrix_mod.Matrix,
    args: BenchArgs,
    **extra: object,
) -> None:
    """Before measuring: the run folder checked writable, its manifest, reports/latest."""
    ensure_writable(cfg.run_dir)
    write_manifest(cfg.run_dir, matrix_path, matrix, args, cfg.run_id, mode=cfg.mode,
                   repeats=cfg.repeats, **extra)  # fmt: skip
    point_latest(cfg.run_dir)


def bench_launched(ns: argparse.Namespace) -> int:
    """`--launcher slurm`: the cells split as --shard splits them, a submitit job per shard
    into RUN_DIR/shards/I-of-N (matrix.yaml launch:), then the merge into RUN_DIR."""
    from rich.console import Console  # noqa: PLC0415 - as progress above

    from harness.measure import launch  # noqa: PLC0415 - submitit: only for this

    m = load_matrix(ns.matrix, refresh=ns.refresh)
    args = bench_args(ns, m)
    if args.shard is not None or args.resume is not None:
        raise UsageError("--launcher slurm makes its own shards: drop --shard and --resume")
    cells = select(m, args)
    if all(c.stack.install for c in cells):
        raise UsageError("no existing-environment stack (install: false) selected")
    cfg = run_config(args, m, new_run_id())
    cfg = dataclasses.replace(cfg, run_dir=cfg.run_dir.resolve())
    count = min(m.launch.shards, len(cells))  # no empty shard
    start_run(cfg, ns.matrix, m, args, launcher={"cluster": m.launch.cluster, "shards": count})
    run_dir = cfg.run_dir
    parts = []
    for i in range(1, count + 1):
        folder, options = run_dir / "shards" / f"{i}-of-{count}", copy.copy(ns)
        # The run's own id, so the merged records are one run; absolute paths for the job.
        vars(options).update(launcher="local", shard=(i, count), out=folder, refresh=False,
                             run_id=cfg.run_id, matrix=ns.matrix.resolve(), launched_shard=True)  # fmt: skip  # noqa: E501
        # What the submitit job runs: this same bench, on its shard.
        parts.append(launch.Shard(i, count, folder, functools.partial(bench_existing, options)))
    console = Console(width=200)
    failed = [f.shard.name for f in launch.launch(parts, run_dir, m.launch, console) if f.error]
    ingest_quietly(run_dir, paths.store_dir())
    code = finish_run(run_dir, console, strict_golden=args.strict_golden)
    if failed:
        print(f"shard jobs failed: {', '.join(failed)} (their stderr is above)", file=sys.stderr)
    return 1 if failed else code


def parser(name: str = "bench") -> usage.Parser:
    p = command(name, bench_options())
    add_matrix(p)
    p.add_argument(
        "--launcher", choices=("local", "slurm"), default="local",
        help="slurm: a submitit job per shard (matrix.yaml launch:), waited for and merged",
    )  # fmt: skip
    return p


main = entry(parser, bench_existing, matrix_mod.MatrixError, golden.GoldenError)
