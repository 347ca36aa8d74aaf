"""The `harness` console script: every command, its --help, one error line, the noxfile's deps."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import tomllib

from harness import usage
from harness.commands import COMMANDS, bench, main

if TYPE_CHECKING:
    from harness.config import matrix

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
EXPECTED = ("bench", "report", "compare", "bisect", "golden", "ci-workflow", "validate", "cells",
            "summary", "schema", "merge", "history", "publish")  # fmt: skip


def test_console_script_is_harness_commands_main() -> None:
    assert PYPROJECT["project"]["scripts"] == {"harness": "harness.commands:main"}
    assert tuple(COMMANDS) == EXPECTED


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: harness ")
    for name, text in COMMANDS.items():
        assert re.search(rf"^\s+{re.escape(name)}\b", out, re.MULTILINE), name
        assert text.split()[0] in out


@pytest.mark.parametrize("name", EXPECTED)
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: harness {name}"), out
    assert COMMANDS[name] in " ".join(out.split())


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["nope"], "invalid choice: 'nope'"),
        (["bench", "--profile", "huge"], "unknown profile 'huge'"),
        (["cells", "--models", "gpt3"], "unknown model id 'gpt3'"),
        (["validate", "/nonexistent/matrix.yaml"], "matrix.yaml"),
        (["summary", "/nonexistent/run"], "no such run folder"),
        (["report", "/nonexistent/run"], "no such run folder"),
        (["compare", "a"], "expected BASE and CANDIDATE"),
        (["golden", "--run", "/nonexistent/run", "--from", "s"], "no such run folder"),
        (["bisect", "--good", "tf>=1"], "expected tf==VERSION"),
        (["ci-workflow", "--shards", "0"], "positive integer"),
        (["schema", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == usage.USAGE_EXIT
    captured = capsys.readouterr()
    assert captured.err.startswith("harness: error: "), captured.err
    assert captured.err.count("\n") == 1, captured.err
    assert fragment in captured.err
    assert "Traceback" not in captured.err


def test_usage_run_keeps_a_message_to_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> int:
        raise usage.UsageError("a\nb")

    assert usage.run(bad) == usage.USAGE_EXIT
    assert capsys.readouterr().err == "harness: error: a b\n"


def test_cli_module_is_the_same_main() -> None:
    assert main(["validate"]) == 0


@pytest.mark.skipif(
    importlib.util.find_spec("harness.config.schema") is None,
    reason="harness.config.schema not written yet",
)
def test_schema_prints_the_matrix_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.config.schema import matrix_json_schema

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(matrix_json_schema()))


def _script_block(text: str) -> dict[str, object]:
    """PEP 723: the `# /// script` block's TOML."""
    match = re.search(r"^# /// script\n((?:#.*\n)+?)# ///$", text, re.MULTILINE)
    assert match, "no PEP 723 block"
    lines = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in match[1].splitlines()]
    return tomllib.loads("\n".join(lines))


def test_noxfile_script_dependencies_are_pyprojects() -> None:
    """A nox installed on its own installs these to import the harness: they must not drift."""
    block = _script_block((REPO / "noxfile.py").read_text(encoding="utf-8"))
    deps = block["dependencies"]
    assert isinstance(deps, list)
    project = PYPROJECT["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps}
    assert "nox" in names
    assert sorted(set(deps) - {d for d in deps if d.lower().startswith("nox")}) == sorted(
        d for d in project if not d.lower().startswith("nox")
    )
    assert set(project) <= set(deps)
    assert block["requires-python"] == PYPROJECT["project"]["requires-python"]


def test_manifest_records_wheel_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.config import matrix as matrix_mod

    m: matrix.Matrix = matrix_mod.load(REPO / "matrix.yaml")
    monkeypatch.setenv("UV_FIND_LINKS", str(tmp_path / "wheels"))
    args = bench.parse_bench_args(["--profile", "smoke"], m)
    bench.write_manifest(tmp_path, REPO / "matrix.yaml", m, args, "r1")
    data = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert data["wheel_sources"]["from"] == "uv env"
    assert data["wheel_sources"]["find_links"] == [str(tmp_path / "wheels")]
