"""Every architecture family the Auto classes load for generation, on a real stack.

Tiny random models (tests/data/make_family.py) of four families: the worker picks the class
from each model's config, with no code of its own per architecture.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.config.matrix import Cell, Model, Scenario
from harness.measure import runner

if TYPE_CHECKING:
    from harness.config.matrix import Stack

MAKE = Path(__file__).resolve().parents[1] / "data" / "make_family.py"
FAMILIES = {
    "llama": ["LlamaForCausalLM"],
    "qwen2": ["Qwen2ForCausalLM"],
    "gpt_neox": ["GPTNeoXForCausalLM"],
    "t5": ["T5ForConditionalGeneration"],
}


@pytest.mark.e2e
def test_each_family_loads_and_generates_through_its_auto_class(
    tmp_path: Path, test_stack: Stack, stack_python: Path
) -> None:
    cells = []
    for family in FAMILIES:
        folder = tmp_path / family
        subprocess.run([str(stack_python), str(MAKE), family, str(folder)], check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        model = Model(family, "local", str(folder), ("The lighthouse stood on",))
        cells.append(Cell(test_stack, model, Scenario(None, None, "float32", "safetensors", 6)))
    cfg = runner.RunConfig("families", tmp_path / "run", "forkserver", 300, 1, tmp_path / "c")
    records = runner.run_stack(test_stack, cells, stack_python, cfg)
    for record in records:
        assert record["status"] == "ok", (record["model"], record["message"])
        assert record["model_type"] == record["model"]
        assert record["architectures"] == FAMILIES[record["model"]]
        assert [len(ids) for ids in record["output_ids"]] == [6]
        assert [len(m) for m in record["margins"]] == [6]
        # The model's own modeling module is imported before the baseline, not in load_s.
        assert record["model_import_s"] is not None
