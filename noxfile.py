# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "nox>=2025.2.9",
#     "uv>=0.5",
#     "PyYAML>=6",
#     "packaging>=23",
#     "rich>=13",
#     "pandas>=2.1",
#     "pyarrow>=14",
#     "plotly>=5.18",
#     "scipy>=1.11",
#     "pydantic>=2.6",
#     "ruptures>=1.1",
#     "duckdb>=1.0",
#     "submitit>=1.5",
# ]
# ///
"""Thin sessions over the `harness` commands. `nox -s bench -- OPTIONS` (`harness bench --help`)
runs one `bench-<stack-id>` session per stack of $HARNESS_MATRIX or matrix.yaml.

The block above is pyproject's dependencies (a test keeps them equal), for a nox of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import paths, usage
from harness.commands import bench as bench_cmd
from harness.commands import bisect, ci_workflow, compare, load_matrix
from harness.commands import golden as golden_cmd
from harness.commands import publish as publish_cmd
from harness.commands import report as report_cmd
from harness.config import matrix
from harness.golden import store as golden
from harness.measure import envs, progress, runner
from harness.report import console, store

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests", "lint"]

MATRIX_PATH = Path(os.environ.get("HARNESS_MATRIX", Path(__file__).with_name("matrix.yaml")))
# A broken matrix is the user's mistake: one line, exit 2, nothing run.
# Sweeps become stacks here, from the index's cached listing (`-- --refresh` asks it again).
MATRIX = usage.or_exit(
    lambda: load_matrix(MATRIX_PATH, refresh="--refresh" in sys.argv), matrix.MatrixError
)
RUN_ID = os.environ.get("HARNESS_RUN_ID") or bench_cmd.new_run_id()


def _exit(session: nox.Session, code: int, failure: str) -> None:
    """A command's exit code as the session's: 2 exits as is, any other failure fails it."""
    if code == usage.USAGE_EXIT:
        sys.exit(code)
    if code:
        session.error(failure)


def _call(
    session: nox.Session, main: Callable[[Sequence[str]], int], failure: str = "failed"
) -> None:
    _exit(session, main(session.posargs), failure)


def _bench(session: nox.Session) -> tuple[bench_cmd.BenchArgs, runner.RunConfig]:
    args = usage.or_exit(lambda: bench_cmd.parse_bench_args(session.posargs, MATRIX))
    cfg = usage.or_exit(lambda: bench_cmd.run_config(args, MATRIX, RUN_ID), golden.GoldenError)
    return args, cfg


def bench_stack_impl(session: nox.Session, stack: matrix.Stack) -> None:
    args, cfg = _bench(session)
    if args.stacks and stack.id not in args.stacks:
        session.skip(f"{stack.id} not in --stacks")
    cells = bench_cmd.select(MATRIX, args, stack.id)
    if not cells:
        session.skip(f"profile {args.profile} has no cells for {stack.id}")
    jsonl = cfg.run_dir / "raw" / f"{stack.id}.jsonl"
    if cfg.resume and not runner.pending(cells, cfg, jsonl):
        # A resumed sweep never installs or runs a finished stack again.
        session.skip(f"{stack.id} finished in {cfg.run_dir}")
    usage.or_exit(lambda: bench_cmd.start_run(cfg, MATRIX_PATH, MATRIX, args))
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
        bench_cmd.record_install_error(cfg, stack, cells, installed.message)
        return
    if args.interleave:  # the aggregate `bench` session runs every stack in turn
        (cfg.run_dir / "raw" / f"{stack.id}.python").write_text(str(python), encoding="utf-8")
        return
    with progress.reporter(stack.id) as report:
        runner.run_stack(stack, cells, python, cfg, progress=report)


def _make_stack_session(stack: matrix.Stack) -> None:
    def bench_stack(session: nox.Session) -> None:
        bench_stack_impl(session, stack)

    bench_stack.__doc__ = f"Measure stack {stack.id} ({', '.join(stack.requirements())})."
    nox.session(
        name=f"bench-{stack.id}", python=stack.python if stack.install else False,
        venv_backend="uv|virtualenv" if stack.install else None, default=False,
    )(bench_stack)  # fmt: skip


for _stack in MATRIX.stacks:
    _make_stack_session(_stack)


@nox.session(python=False, requires=[f"bench-{s.id}" for s in MATRIX.stacks], default=False)
def bench(session: nox.Session) -> None:
    """Measure every stack of matrix.yaml, then print the summary; fails if any cell failed."""
    args, cfg = _bench(session)
    cells = bench_cmd.select(MATRIX, args)
    raw = cfg.run_dir / "raw"
    ready = [s for s in MATRIX.stacks if (raw / f"{s.id}.python").exists()] if args.interleave else []  # fmt: skip  # noqa: E501
    if ready:
        plans = [(s, cells, Path((raw / f"{s.id}.python").read_text(encoding="utf-8"))) for s in ready]  # fmt: skip  # noqa: E501
        with progress.reporter("interleaved") as report:
            runner.run_stacks(plans, cfg, progress=report)
    for stack in MATRIX.stacks:
        if args.stacks and stack.id not in args.stacks:
            continue
        if not (cfg.run_dir / "raw" / f"{stack.id}.jsonl").exists():
            # nox skipped the session (e.g. its interpreter is missing): say so in records.
            why = f"nox skipped bench-{stack.id} (is python{stack.python} installed?)"
            bench_cmd.record_install_error(cfg, stack, cells, f"no environment: {why}")
    store.ingest_quietly(cfg.run_dir, paths.store_dir())  # history; a failure only warns
    code = console.finish_run(cfg.run_dir, strict_golden=args.strict_golden)
    # Failed runs get a report too: that is when people need to look.
    if report_cmd.main([str(cfg.run_dir)]):
        session.warn("no report (see above)")
    _exit(session, code and 1, "some cells failed or changed their output (see above)")


@nox.session(name="golden", python=False)
def golden_session(session: nox.Session) -> None:
    """Record or refresh goldens: -- --from STACK_ID [--models ...] [--run DIR] [--write]."""
    _call(session, golden_cmd.main, "blessing refused")


@nox.session(python=False, default=False)
def report(session: nox.Session) -> None:
    """Tables, charts, dashboard and claims of one or several runs (default reports/latest)."""
    _call(session, report_cmd.main)


@nox.session(name="compare", python=False, default=False)
def compare_session(session: nox.Session) -> None:
    """Upgrade verdicts: -- BASE CANDIDATE | --walk  [--run DIR] [--json F] [--markdown F]."""
    _call(session, compare.main, "worse verdicts under the fail-on policy (see above)")


@nox.session(name="bisect", python=False, default=False)
def bisect_session(session: nox.Session) -> None:
    """First transformers release where a metric flips: -- --good tf==A --bad tf==B ..."""
    _call(session, bisect.main, "no single answer (see above)")


@nox.session(python=False, default=False)
def publish(session: nox.Session) -> None:
    """A static site into a folder: -- [RUN_DIR ...] --out SITE_DIR (default: the store)."""
    _call(session, publish_cmd.main, "no site (see above)")


@nox.session(name="ci-workflow", python=False)
def ci_workflow_session(session: nox.Session) -> None:
    """Write .github/workflows/bench.yml from matrix.yaml: -- [--shards N] [--profile P]."""
    _call(session, ci_workflow.main)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Unit tests: no stacks, no network."""
    session.run("python", "--version")
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session(python=False)
def e2e(session: nox.Session) -> None:
    """End-to-end tests: real stacks installed with uv."""
    session.run("pytest", "-m", "e2e", *session.posargs)


@nox.session(python=False, default=False)
def fuzz(session: nox.Session) -> None:
    """The matrix loader under hypothesis' explore profile (long; opt-in)."""
    session.run(
        "pytest", "tests/config/test_loader_fuzz.py", *session.posargs,
        env={"HYPOTHESIS_PROFILE": "explore"},
    )  # fmt: skip


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff, mypy strict and the import contracts (import-linter)."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("lint-imports")
