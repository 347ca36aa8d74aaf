"""Golden verdicts: unit tests on the rules, and real runs of perturbed tiny-gpt2 copies."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from harness.commands import golden as golden_cmd
from harness.config.matrix import Cell, Model, Scenario, Stack
from harness.golden import bless
from harness.golden import store as golden
from harness.measure import runner

if TYPE_CHECKING:
    from harness.records import Record

TOL = {"float32": 0.01, "bfloat16": 0.5, "float16": 0.1}
FIXTURE = Path(__file__).resolve().parents[2] / "harness" / "fixtures" / "tiny_gpt2"
PERTURB = Path(__file__).resolve().parents[1] / "data" / "perturb.py"
PROMPTS = tuple(json.loads((FIXTURE / "manifest.json").read_text())["prompts"])


def record(ids: list[int], *, model: str = "m", prompt: str = "p", **kw: Any) -> Record:
    base: dict[str, Any] = {
        "status": "ok", "model": model, "dtype": "float32", "max_new_tokens": len(ids),
        "prompts": [prompt], "output_ids": [ids], "output_text": [f"text{ids}"],
        "margins": [[5.0] * len(ids)], "transformers_version": "4.57.6",
        "torch_version": "2.13.0+cpu", "device_map": None, "cuda_peak_mb": None,
        "weights_sha256": "aaa", "stack_id": "s", "run_id": "r", "cell_id": f"{model}/st",
        "repeat": 0, "checkpoint_format": "safetensors", "low_cpu_mem_usage": None,
        "message": "", "machine_fingerprint": "f",
    }  # fmt: skip
    base.update(kw)
    return cast("Record", base)  # the fields the judge and bless read


def put_golden(root: Path, ids: list[int], margins: list[float], **kw: Any) -> Path:
    g = golden.Golden(
        model=kw.get("model", "m"), prompt=kw.get("prompt", "p"), dtype="float32",
        max_new_tokens=len(ids), ids=tuple(ids), text=f"text{ids}", margins=tuple(margins),
        weights_sha256=kw.get("sha", "aaa"), source={"stack_id": "ref"},
        runner_up=tuple(kw.get("runner_up", [7] * len(ids))),
        tokens=tuple(f"<{i}>" for i in ids), input_ids=kw.get("input_ids"),
        batch=kw.get("batch", 1), quantization=kw.get("quantization", "none"),
    )  # fmt: skip
    return golden.write_golden(root, g)


# ---------------------------------------------------------------- rules


REF = golden.Side([1, 2, 3, 4], [5, 5, 0.005, 5], [8, 8, 9, 8], ["a", "b", "c", "d"])
TIED = [5.0, 5.0, 0.002, 5.0]  # the candidate's own margins, nearly tied at step 2


@pytest.mark.parametrize(
    ("actual", "margins", "verdict", "position"),
    [
        ([1, 2, 3, 4], [5, 5, 5, 5], "match", None),
        ([1, 2, 9, 9], TIED, "drift", 2),  # took the runner-up, both tied there
        ([1, 2, 9, 9], [5, 5, 3.0, 5], "mismatch", 2),  # took it confidently
        ([1, 2, 7, 9], TIED, "mismatch", 2),  # a token that was not the runner-up
        ([1, 2, 3], [5, 5, 5], "mismatch", 3),  # stopped early
        # The hole: only the reference's near-tie was checked, so this was drift.
        ([1, 777, 778, 779], [0.001] * 4, "mismatch", 1),
    ],
)
def test_compare(
    actual: list[int], margins: list[float], verdict: str, position: int | None
) -> None:
    found = golden.compare(golden.Side(actual, margins), REF, 0.01)
    assert found["verdict"] == verdict
    assert found.get("position") == position


def test_the_issue_example_is_a_mismatch_not_drift() -> None:
    # compare([1,777,778,779], [1,2,3,4], margins=[5,0.005,...], tol=0.01) returned drift.
    reference = golden.Side([1, 2, 3, 4], [5, 0.005, 0.005, 0.005])
    found = golden.compare(golden.Side([1, 777, 778, 779]), reference, 0.01)
    assert (found["verdict"], found["position"]) == ("mismatch", 1)


def test_a_reference_without_runner_ups_never_gives_drift() -> None:
    # Golden files of version 1 have no runner-ups: nothing can show the flip was a tie.
    found = golden.compare(golden.Side([1, 9], [5, 0.001]), golden.Side([1, 2], [5, 0.001]), 0.01)
    assert found["verdict"] == "mismatch"


def test_the_first_divergence_is_described() -> None:
    found = golden.compare(golden.Side([1, 2, 9, 9], TIED, (), ["a", "b", "X", "Y"]), REF, 0.01)
    assert (found["expected_token"], found["actual_token"], found["context"]) == ("c", "X", "ab")
    assert golden.describe(found) == (
        "drift at new token 2: expected 'c' (margin 0.005), got 'X' (margin 0.002) after 'ab'"
    )


def test_judge_verdicts(tmp_path: Path) -> None:
    put_golden(tmp_path, [1, 2, 3, 4], [5, 5, 0.001, 5])
    judge = golden.Judge.open(tmp_path, TOL)
    assert judge.judge(record([1, 2, 3, 4]))["golden"] == "match"
    drift = judge.judge(record([1, 2, 7, 7], margins=[[5, 5, 0.002, 5]]))
    assert drift["golden"] == "drift"
    assert judge.judge(record([1, 2, 7, 7]))["golden"] == "mismatch"  # the candidate was sure
    assert drift["golden_detail"][0]["position"] == 2
    assert drift["golden_detail"][0]["reference_margin"] == 0.001
    mismatch = judge.judge(record([1, 8, 3, 4]))
    assert mismatch["golden"] == "mismatch"
    detail = mismatch["golden_detail"][0]
    assert (detail["position"], detail["expected_id"], detail["actual_id"]) == (1, 2, 8)
    assert detail["expected_text"] == "text[1, 2, 3, 4]"
    assert judge.judge(record([1, 2, 3, 4], weights_sha256="bbb"))["golden"] == "stale"
    assert judge.judge(record([1, 2, 3, 4], prompt="other"))["golden"] == "missing"
    assert judge.judge(record([1], status="error"))["golden"] is None


def test_other_input_ids_are_a_tokenizer_change_judged_first(tmp_path: Path) -> None:
    put_golden(tmp_path, [1, 2, 3, 4], [5, 5, 5, 5], input_ids=[10, 11, 12])
    judge = golden.Judge.open(tmp_path, TOL)
    assert judge.judge(record([1, 2, 3, 4], input_ids=[[10, 11, 12]]))["golden"] == "match"
    # The same output ids, but the prompt was tokenized differently: the tokenizer changed.
    found = judge.judge(record([1, 2, 3, 4], input_ids=[[10, 13, 12]]))
    assert found["golden"] == "tokenizer"
    detail = found["golden_detail"][0]
    assert (detail["input_position"], detail["expected_input_id"], detail["actual_input_id"]) == (1, 11, 13)  # fmt: skip
    assert golden.describe(detail) == "tokenizer changed: input token 1 is 13, expected 11"


def test_a_record_takes_its_worst_prompt(tmp_path: Path) -> None:
    put_golden(tmp_path, [1, 2], [5, 5], prompt="a")
    put_golden(tmp_path, [1, 2], [5, 5], prompt="b")
    rec = record([1, 2], prompts=["a", "b"], output_ids=[[1, 2], [1, 3]],
                 output_text=["x", "y"])  # fmt: skip
    assert golden.Judge.open(tmp_path, TOL).judge(rec)["golden"] == "mismatch"


def _expect(root: Path, text: str) -> None:
    (root / golden.EXPECTATIONS_FILE).write_text(text)


def test_expectations_are_version_keyed_and_need_a_reason(tmp_path: Path) -> None:
    put_golden(tmp_path, [1, 2, 3], [5, 5, 5])
    _expect(
        tmp_path,
        """\
- model: m
  transformers: ">=5"
  ids: [1, 2, 9]
  reason: "5.x changed a generation default (example)"
""",
    )
    judge = golden.Judge.open(tmp_path, TOL)
    on_5 = judge.judge(record([1, 2, 9], transformers_version="5.24.0"))
    assert on_5["golden"] == "match"
    assert on_5["golden_detail"][0]["expectation"].startswith("5.x changed")
    # Outside the declared range the golden itself applies, never the expectation.
    assert judge.judge(record([1, 2, 9], transformers_version="4.57.6"))["golden"] == "mismatch"
    assert judge.judge(record([1, 2, 3], transformers_version="4.57.6"))["golden"] == "match"
    # An unknown version does not match a keyed expectation.
    assert judge.judge(record([1, 2, 9], transformers_version=None))["golden"] == "mismatch"


def test_ambiguous_expectations_are_never_picked_silently(tmp_path: Path) -> None:
    put_golden(tmp_path, [1, 2, 3], [5, 5, 5])
    _expect(
        tmp_path,
        """\
- {model: m, transformers: ">=5", ids: [1, 2, 9], reason: a}
- {model: m, torch: ">=2", ids: [1, 2, 8], reason: b}
""",
    )
    found = golden.Judge.open(tmp_path, TOL).judge(record([1, 2, 9], transformers_version="5.1"))
    assert found["golden"] == "mismatch"
    assert "ambiguous" in found["golden_detail"][0]["error"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- {model: m, ids: [1]}", "needs a written reason"),
        ("- {model: m, ids: [1], reason: '  '}", "needs a written reason"),
        ("- {model: m, ids: [1], reason: r, transformers: '=>5'}", "bad version specifier"),
        ("- {model: m, ids: [1], reason: r, colour: red}", "unknown key 'colour'"),
        ("- {model: m, ids: one, reason: r}", "list of token ids"),
        ("{model: m}", "expected a list"),
        ("- [", "YAML syntax error"),
    ],
)
def test_bad_expectations(tmp_path: Path, text: str, fragment: str) -> None:
    _expect(tmp_path, text)
    with pytest.raises(golden.GoldenError, match=fragment) as info:
        golden.load_expectations(tmp_path)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- bless


def _run_dir(tmp_path: Path, records: list[Record]) -> Path:
    run = tmp_path / "run"
    (run / "raw").mkdir(parents=True)
    with (run / "raw" / "s.jsonl").open("w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return run


def test_bless_is_a_dry_run_without_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_dir(tmp_path, [record([1, 2, 3]), record([1, 2, 3], repeat=1)])
    root = tmp_path / "goldens"
    argv = ["--from", "s", "--run", str(run), "--goldens", str(root)]
    assert golden_cmd.main(argv) == 0
    assert "1 golden(s) would change; nothing written" in capsys.readouterr().out
    assert not root.exists()
    assert golden_cmd.main([*argv, "--write"]) == 0
    (path,) = root.rglob("*.json")
    assert json.loads(path.read_text())["ids"] == [1, 2, 3]
    assert golden_cmd.main(argv) == 0
    assert "0 golden(s) would change" in capsys.readouterr().out


def test_bless_refuses_a_failed_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = record([], status="error", message="OSError: boom", output_ids=[], output_text=[])
    run = _run_dir(tmp_path, [record([1, 2, 3]), bad])
    root = tmp_path / "goldens"
    code = golden_cmd.main(["--from", "s", "--run", str(run), "--goldens", str(root), "--write"])
    assert code == bless.REFUSED_EXIT
    assert "is error: OSError: boom" in capsys.readouterr().err
    assert not root.exists()


def test_bless_refuses_disagreeing_records_and_reports_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "goldens"
    put_golden(root, [1, 2, 3], [5, 5, 5])
    run = _run_dir(tmp_path, [record([1, 2, 4])])
    assert golden_cmd.main(["--from", "s", "--run", str(run), "--goldens", str(root)]) == 0
    assert "ids differ from position 2" in capsys.readouterr().out
    run2 = _run_dir(tmp_path / "b", [record([1, 2, 4]), record([1, 2, 5], checkpoint_format="bin")])
    assert golden_cmd.main(["--from", "s", "--run", str(run2), "--goldens", str(root)]) == 1
    assert golden_cmd.main(["--from", "nope", "--run", str(run2)]) == 2


def test_batched_and_quantized_outputs_have_goldens_of_their_own(tmp_path: Path) -> None:
    root = tmp_path / "g"
    plain = put_golden(root, [1, 2, 3], [5, 5, 5])
    batched = put_golden(root, [1, 2, 4], [5, 5, 5], batch=4)
    int8 = put_golden(root, [1, 9, 9], [5, 5, 5], quantization="int8")
    # The unbatched, unquantized file keeps the name it had before these keys existed.
    assert plain.name.startswith("float32-greedy-n3-p-")
    assert batched.name.startswith("float32-greedy-n3-b4-p-")
    assert int8.name.startswith("float32-int8-greedy-n3-p-")
    judge = golden.Judge(root, TOL)
    assert judge.judge(record([1, 2, 3]))["golden"] == "match"
    assert judge.judge(record([1, 2, 4], batch=4))["golden"] == "match"
    assert judge.judge(record([1, 9, 9], quantization="int8"))["golden"] == "match"
    assert golden.load_golden(batched).batch == 4


def test_a_batched_difference_says_whether_batching_or_the_version_made_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "g"
    put_golden(root, [1, 2, 3], [5, 5, 5])
    put_golden(root, [1, 2, 4], [5, 5, 5], batch=4)
    judge = golden.Judge(root, TOL)
    # The batch-4 output now equals the unbatched golden: batching's rounding moved.
    (detail,) = judge.judge(record([1, 2, 3], batch=4))["golden_detail"]
    assert (detail["verdict"], detail["cause"]) == ("mismatch", "batching")
    assert "batching: the unbatched golden gives this output" in golden.describe(detail)
    # Neither golden gives it: the version changed the output.
    (detail,) = judge.judge(record([1, 7, 7], batch=4))["golden_detail"]
    assert (detail["verdict"], detail["cause"]) == ("mismatch", "version")
    assert "cause" not in judge.judge(record([1, 7, 7]))["golden_detail"][0]


def test_bless_keeps_batch_sizes_apart(tmp_path: Path) -> None:
    # Batching may change rounding: other ids at batch 4 are not a disagreement.
    run = _run_dir(tmp_path, [record([1, 2, 3]), record([1, 2, 4], batch=4)])
    root = tmp_path / "goldens"
    assert (
        golden_cmd.main(["--from", "s", "--run", str(run), "--goldens", str(root), "--write"]) == 0
    )
    found = {golden.load_golden(p).batch: golden.load_golden(p).ids for p in root.rglob("*.json")}
    assert found == {1: (1, 2, 3), 4: (1, 2, 4)}


# ---------------------------------------------------------------- real models


def _copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURE / "st", dest)
    return dest


def _perturb(python: Path, *args: str) -> str:
    proc = subprocess.run([str(python), str(PERTURB), *args], capture_output=True, text=True,
                          check=True, timeout=300)  # fmt: skip
    return proc.stdout.strip()


def _run(stack: Stack, python: Path, tmp_path: Path, folders: dict[str, Path]) -> dict[str, Record]:
    cells = [
        Cell(stack,
             Model(id=name, source="local", location=str(folder), prompts=PROMPTS,
                   revision=None, trust_remote_code=False),
             Scenario(None, None, "float32", "safetensors", 20))
        for name, folder in folders.items()
    ]  # fmt: skip
    cfg = runner.RunConfig(run_id="golden-test", run_dir=tmp_path / f"run-{len(list(tmp_path.iterdir()))}",
                           mode="forkserver", timeout_s=300, repeats=1,
                           cache_dir=tmp_path / "cache")  # fmt: skip
    recs = runner.run_stack(stack, cells, python, cfg)
    assert [r["status"] for r in recs] == ["ok"] * len(folders), [r["message"] for r in recs]
    return {r["model"]: r for r in recs}


def _outputs_only(rec: Record) -> Record:
    # The perturbed copies have other weights by construction: judge their outputs alone.
    return {**rec, "weights_sha256": None}


@pytest.mark.e2e
def test_real_perturbations_of_tiny_gpt2(
    test_stack: Stack, stack_python: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ref_dir = _copy(work, "ref")
    ref = _run(test_stack, stack_python, work, {"tiny": ref_dir})["tiny"]
    goldens = tmp_path / "goldens"
    for change in bless.plan([ref], test_stack.id, None, goldens):
        golden.write_golden(goldens, change.golden)
    judge = golden.Judge.open(goldens, TOL)

    # An untouched copy matches; a copy with a changed weight file is stale.
    same = _copy(work, "same")
    bumped = _copy(work, "bumped")
    _perturb(stack_python, "bump", str(bumped))
    confident = _copy(work, "confident")
    step = int(_perturb(stack_python, "confident", str(confident), PROMPTS[0],
                        json.dumps(ref["output_ids"][0])))  # fmt: skip
    runs = _run(
        test_stack,
        stack_python,
        work,
        {"tiny": same, "tiny-bumped": bumped, "tiny-confident": confident},
    )
    assert judge.judge(runs["tiny"])["golden"] == "match"
    stale = judge.judge({**runs["tiny-bumped"], "model": "tiny"})
    assert stale["golden"] == "stale"
    # Zeroing one token's embedding row changes a confident choice: mismatch, right step.
    found = judge.judge(_outputs_only({**runs["tiny-confident"], "model": "tiny"}))
    assert found["golden"] == "mismatch"
    detail = found["golden_detail"][0]
    assert detail["position"] == step
    margin = detail["reference_margin"]
    assert margin is not None
    assert margin > 1.0
    assert detail["expected_id"] == ref["output_ids"][0][step]

    # Near-ties: flatten the logits (same argmax, margins ~1e-4), bless that, then nudge.
    flat = _copy(work, "flat")
    _perturb(stack_python, "flatten", str(flat), "1e-4")
    flat_ref = _run(test_stack, stack_python, work, {"tiny-flat": flat})["tiny-flat"]
    assert max(max(m) for m in flat_ref["margins"]) < TOL["float32"]
    for change in bless.plan([flat_ref], test_stack.id, None, goldens):
        golden.write_golden(goldens, change.golden)
    nudged = _copy(work, "nudged")
    shutil.copyfile(flat / "model.safetensors", nudged / "model.safetensors")
    _perturb(stack_python, "nudge", str(nudged), "2e-3", "7")
    after = _run(test_stack, stack_python, work, {"tiny-flat": nudged})["tiny-flat"]
    assert after["output_ids"] != flat_ref["output_ids"], "the nudge must change the output"
    judge = golden.Judge.open(goldens, TOL)
    # The hole: every reference step was a near-tie, so this ("ship ship ship ...", not the
    # runner-up) was drift. A token the reference did not rank second is a real change.
    nudged_verdict = judge.judge(_outputs_only(after))
    assert nudged_verdict["golden"] == "mismatch", json.dumps(nudged_verdict["golden_detail"])
    # The smallest real flip: the first step's runner-up raised just past the top-1.
    flipped = _copy(work, "flipped")
    shutil.copyfile(flat / "model.safetensors", flipped / "model.safetensors")
    ids = json.loads(_perturb(stack_python, "flip", str(flipped), PROMPTS[0]).splitlines()[-1])
    assert ids["runner_up"] == flat_ref["runner_up"][0][0]
    run = _run(test_stack, stack_python, work, {"tiny-flat": flipped})["tiny-flat"]
    first = judge.judge(_outputs_only(run))["golden_detail"][0]  # the flipped prompt
    assert first["verdict"] == "drift", first
    assert (first["position"], first["actual_id"]) == (0, ids["runner_up"])
    assert first["reference_margin"] is not None
    assert first["candidate_margin"] is not None
    assert first["candidate_margin"] < first["reference_margin"] < TOL["float32"]
    assert golden.describe(first).startswith("drift at new token 0: expected ")
