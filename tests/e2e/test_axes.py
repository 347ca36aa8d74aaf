"""The scenario axes batch, attn_implementation, quantization and offload, on a real stack.

One test per axis: each runs real workers through the runner and checks what the records say
against what the axis promises.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.config.matrix import Cell, Model, Scenario
from harness.golden import store as golden
from harness.measure import runner

if TYPE_CHECKING:
    from harness.config.matrix import Stack
    from harness.records import Record

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "harness" / "fixtures" / "tiny_gpt2"
PROMPTS = tuple(json.loads((TINY / "manifest.json").read_text())["prompts"])
MAKE = REPO / "tests" / "data" / "make_family.py"
TINY_GPT2 = Model("tiny-gpt2", "embedded", "tiny_gpt2", PROMPTS)


def scenario(**later: object) -> Scenario:
    base: dict[str, object] = {"low_cpu_mem_usage": None, "device_map": None,
                               "dtype": "float32", "checkpoint_format": "safetensors",
                               "max_new_tokens": 8}  # fmt: skip
    return Scenario(**{**base, **later})  # type: ignore[arg-type]


def run(stack: Stack, python: Path, tmp_path: Path, cells: list[Cell]) -> list[Record]:
    judge = golden.Judge.open(REPO / "goldens", {"float32": 0.01})
    cfg = runner.RunConfig("axes", tmp_path / "run", "forkserver", 300, 1, tmp_path / "cache",
                           judge=judge)  # fmt: skip
    return runner.run_stack(stack, cells, python, cfg)


@pytest.mark.e2e
def test_batches_are_left_padded_and_outputs_stay_per_prompt(
    tmp_path: Path, test_stack: Stack, stack_python: Path
) -> None:
    # Three prompts of different lengths: batch 4 pads them on the left, and fills the batch.
    cells = [Cell(test_stack, TINY_GPT2, scenario(batch=b)) for b in (1, 4)]
    one, four = run(test_stack, stack_python, tmp_path, cells)
    assert (one["status"], four["status"]) == ("ok", "ok"), four["message"]
    assert (one["batch"], four["batch"]) == (1, 4)
    assert four["prompts"] == list(PROMPTS)
    assert [len(ids) for ids in four["output_ids"]] == [8, 8, 8]
    assert len({len(i) for i in four["input_ids"]}) > 1  # the prompts really needed padding
    # The input ids are each prompt's own, never the padded row.
    assert four["input_ids"] == one["input_ids"]
    # tiny-gpt2's margins are wide: padding with a mask changes no token.
    assert four["output_ids"] == one["output_ids"]
    assert all(
        abs(a - b) < 1e-3 for a, b in zip(four["margins"][1], one["margins"][1], strict=True)
    )


@pytest.mark.e2e
def test_the_attention_implementation_used_is_recorded(
    tmp_path: Path, test_stack: Stack, stack_python: Path
) -> None:
    cells = [Cell(test_stack, TINY_GPT2, scenario(attn_implementation=a))
             for a in ("default", "eager", "sdpa")]  # fmt: skip
    default, eager, sdpa = run(test_stack, stack_python, tmp_path, cells)
    for record in (default, eager, sdpa):
        assert record["status"] == "ok", record["message"]
    assert "attn_implementation" not in (default["load_kwargs"] or {})
    assert (eager["attn_requested"], eager["attn_implementation"]) == ("eager", "eager")
    assert (sdpa["attn_requested"], sdpa["attn_implementation"]) == ("sdpa", "sdpa")
    assert default["attn_requested"] == "default"
    assert default["attn_implementation"] in ("eager", "sdpa")  # what 5.24 chose by itself
    assert eager["output_ids"] == sdpa["output_ids"]


@pytest.mark.e2e
def test_int8_stores_fewer_bytes_per_parameter_and_says_when_it_quantized_nothing(
    tmp_path: Path, test_stack: Stack, stack_python: Path
) -> None:
    folder = tmp_path / "llama"
    subprocess.run([str(stack_python), str(MAKE), "llama", str(folder)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    llama = Model("llama", "local", str(folder), ("The lighthouse stood on",))
    cells = [Cell(test_stack, llama, scenario(quantization=q)) for q in ("none", "int8")]
    cells.append(Cell(test_stack, TINY_GPT2, scenario(quantization="int8")))
    fp32, int8, gpt2 = run(test_stack, stack_python, tmp_path, cells)
    for record in (fp32, int8, gpt2):
        assert record["status"] == "ok", record["message"]
    assert fp32["bytes_per_param"] == 4.0
    # Linear weights at one byte plus their scales; the embeddings (most of a model this
    # small) and the norms stay float32.
    assert int8["bytes_per_param"] is not None
    assert 1.0 < int8["bytes_per_param"] < 3.5
    assert (int8["param_bytes"] or 0) < (fp32["param_bytes"] or 0)
    assert int8["params"] == fp32["params"]
    assert "quantization_config" in (int8["load_kwargs"] or {})
    assert not int8["warnings"]
    # GPT-2's projections are Conv1D, not nn.Linear: int8 takes none of them, and says so.
    assert gpt2["bytes_per_param"] == 4.0
    assert any("quantized none of the weights" in w for w in gpt2["warnings"])


@pytest.mark.e2e
def test_disk_offload_puts_weights_on_disk_and_generates_the_same_tokens(
    tmp_path: Path, test_stack: Stack, stack_python: Path
) -> None:
    cells = [
        Cell(test_stack, TINY_GPT2, scenario(device_map="auto")),
        Cell(test_stack, TINY_GPT2, scenario(device_map="auto", offload="disk")),
    ]
    plain, offloaded = run(test_stack, stack_python, tmp_path, cells)
    assert (plain["status"], offloaded["status"]) == ("ok", "ok"), offloaded["message"]
    kwargs = offloaded["load_kwargs"] or {}
    assert kwargs["device_map"] == "auto"
    assert kwargs["offload_folder"] == str(tmp_path / "run" / "offload" / test_stack.id)
    # The CPU gets room for the embedding and one block plus half the rest (1557 KiB of the
    # 1.93 MiB of weights): the embeddings stay on the CPU, both blocks go to disk.
    assert kwargs["max_memory"] == {"cpu": "1557KiB"}
    assert 0 < (offloaded["offloaded_params"] or 0) < (offloaded["params"] or 0)
    placed = offloaded["hf_device_map"] or {}
    assert placed["transformer.wte"] == "cpu"
    assert placed["transformer.h"] == "disk"
    assert plain["offloaded_params"] is None
    assert offloaded["output_ids"] == plain["output_ids"]
    assert not (tmp_path / "run" / "offload" / test_stack.id).exists()  # emptied after the run
