"""Thin sessions, one per concern; the work is in harness/.

`nox -s bench` runs one `bench-<stack-id>` session per stack of matrix.yaml (one uv
environment each), then prints the run's summary. Options after `--`:
  --profile smoke|default|full  --models ID[,ID]  --stacks ID[,ID]  --repeats N
  --out DIR  --mode forkserver|fresh  --timeout SECONDS
Set HARNESS_MATRIX to use another matrix file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import records
from harness.commands import cli
from harness.config import matrix
from harness.decide import bisect as bisect_cli
from harness.decide import compare as compare_cli
from harness.golden import bless
from harness.golden import store as golden
from harness.measure import envs, progress, runner, shards
from harness.report import build as report_mod

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests", "lint"]

MATRIX_PATH = Path(os.environ.get("HARNESS_MATRIX", Path(__file__).with_name("matrix.yaml")))
try:
    MATRIX = matrix.load(MATRIX_PATH)
except matrix.MatrixError as exc:
    # A broken matrix is the user's mistake: one line, exit 2, nothing run.
    print(f"harness: error: {exc}", file=sys.stderr)
    sys.exit(cli.USAGE_EXIT)

RUN_ID = os.environ.get("HARNESS_RUN_ID") or cli.new_run_id()


def _bench_args(session: nox.Session) -> cli.BenchArgs:
    try:
        return cli.parse_bench_args(session.posargs, MATRIX)
    except cli.UsageError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        sys.exit(cli.USAGE_EXIT)


def _config(args: cli.BenchArgs) -> runner.RunConfig:
    try:
        return cli.run_config(args, MATRIX, RUN_ID)
    except golden.GoldenError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        sys.exit(cli.USAGE_EXIT)


def bench_stack_impl(session: nox.Session, stack: matrix.Stack) -> None:
    args = _bench_args(session)
    if args.stacks and stack.id not in args.stacks:
        session.skip(f"{stack.id} not in --stacks")
    cells = cli.select(MATRIX, args, stack.id)
    if not cells:
        session.skip(f"profile {args.profile} has no cells for {stack.id}")
    cfg = _config(args)
    try:
        cli.ensure_writable(cfg.run_dir)
    except cli.UsageError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        sys.exit(cli.USAGE_EXIT)
    cli.write_manifest(
        cfg.run_dir, MATRIX_PATH, args, cfg.run_id, mode=cfg.mode, repeats=cfg.repeats
    )
    cli.point_latest(cfg.run_dir)
    if not stack.install:
        # An existing environment: nothing to install, its versions are read from it.
        python = Path(stack.python)
        installed = envs.existing(python)
    else:
        python = envs.venv_python(Path(str(session.virtualenv.location)))
        session.run(str(python), "--version")
        installed = envs.install(stack, python, cfg.run_dir / "raw" / f"{stack.id}.install.log")
    if not installed.ok:
        session.warn(f"install failed for {stack.id}: {installed.message}")
        for record in records.install_error_records(
            run_id=cfg.run_id, stack=stack, cells=cells, repeats=cfg.repeats, mode=cfg.mode,
            message=installed.message,
        ):  # fmt: skip
            records.append(cfg.run_dir / "raw" / f"{stack.id}.jsonl", record)
        return
    with progress.reporter(stack.id) as report:
        runner.run_stack(stack, cells, python, cfg, progress=report)


def _make_stack_session(stack: matrix.Stack) -> None:
    def bench_stack(session: nox.Session) -> None:
        bench_stack_impl(session, stack)

    bench_stack.__doc__ = f"Measure stack {stack.id} ({', '.join(stack.requirements())})."
    if stack.install:
        nox.session(
            name=f"bench-{stack.id}",
            python=stack.python,
            venv_backend="uv|virtualenv",
            default=False,
        )(bench_stack)
    else:
        nox.session(name=f"bench-{stack.id}", python=False, default=False)(bench_stack)


for _stack in MATRIX.stacks:
    _make_stack_session(_stack)


@nox.session(python=False, requires=[f"bench-{s.id}" for s in MATRIX.stacks], default=False)
def bench(session: nox.Session) -> None:
    """Measure every stack of matrix.yaml, then print the summary; fails if any cell failed."""
    args = _bench_args(session)
    cfg = _config(args)
    selected = [s for s in MATRIX.stacks if not args.stacks or s.id in args.stacks]
    cells = cli.select(MATRIX, args)
    for stack in selected:
        jsonl = cfg.run_dir / "raw" / f"{stack.id}.jsonl"
        if not jsonl.exists():
            # nox skipped the session (e.g. its interpreter is missing): say so in records.
            for record in records.install_error_records(
                run_id=cfg.run_id, stack=stack, cells=cells, repeats=cfg.repeats, mode=cfg.mode,
                message=f"no environment: nox skipped bench-{stack.id} "
                f"(is python{stack.python} installed?)",
            ):  # fmt: skip
                records.append(jsonl, record)
    code = cli.finish_run(cfg.run_dir, strict_golden=args.strict_golden)
    try:
        # Failed runs get a report too: that is when people need to look.
        session.log(f"dashboard: {report_mod.build_reports([cfg.run_dir]).index_html}")
    except report_mod.ReportError as exc:
        session.warn(f"no report: {exc}")
    if code:
        session.error("some cells failed or changed their output (see above)")


@nox.session(name="golden", python=False)
def golden_session(session: nox.Session) -> None:
    """Record or refresh goldens: -- --from STACK_ID [--models ...] [--run DIR] [--write]."""
    code = bless.main(session.posargs)
    if code == cli.USAGE_EXIT:
        sys.exit(code)
    if code:
        session.error("blessing refused")


@nox.session(python=False, default=False)
def report(session: nox.Session) -> None:
    """Tables, charts, dashboard and claims of one or several runs (default reports/latest)."""
    code = report_mod.main(session.posargs)
    if code:
        sys.exit(code)


@nox.session(name="compare", python=False, default=False)
def compare_session(session: nox.Session) -> None:
    """Upgrade verdicts: -- BASE CANDIDATE | --walk  [--run DIR] [--json F] [--markdown F]."""
    code = compare_cli.main(session.posargs)
    if code == cli.USAGE_EXIT:
        sys.exit(code)
    if code:
        session.error("worse verdicts under the fail-on policy (see above)")


@nox.session(name="bisect", python=False, default=False)
def bisect_session(session: nox.Session) -> None:
    """First transformers release where a metric flips: -- --good tf==A --bad tf==B ..."""
    code = bisect_cli.main(session.posargs)
    if code == cli.USAGE_EXIT:
        sys.exit(code)
    if code:
        session.error("no single answer (see above)")


@nox.session(name="ci-workflow", python=False)
def ci_workflow(session: nox.Session) -> None:
    """Write .github/workflows/bench.yml from matrix.yaml: -- [--shards N] [--profile P]."""
    import argparse  # noqa: PLC0415 - only this session parses these options

    parser = argparse.ArgumentParser(prog="nox -s ci-workflow --")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--out", type=Path, default=Path(".github/workflows/bench.yml"))
    parser.add_argument("--cpu-runner", default=None, help="labels, comma-separated")
    parser.add_argument("--gpu-runner", default=None, help="labels, comma-separated")
    ns = parser.parse_args(session.posargs)
    try:
        data = shards.workflow(
            MATRIX, profile=ns.profile, shards=ns.shards,
            cpu_runner=ns.cpu_runner.split(",") if ns.cpu_runner else None,
            gpu_runner=ns.gpu_runner.split(",") if ns.gpu_runner else None,
        )  # fmt: skip
    except matrix.MatrixError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        sys.exit(cli.USAGE_EXIT)
    session.log(f"wrote {shards.write_workflow(ns.out, data)}")


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Unit tests: no stacks, no network."""
    session.run("python", "--version")
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session(python=False)
def e2e(session: nox.Session) -> None:
    """End-to-end tests: real stacks installed with uv."""
    session.run("pytest", "-m", "e2e", *session.posargs)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff and mypy strict."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
