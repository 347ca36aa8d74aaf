"""Where a model comes from: sharded presets, and the shard figures every record carries."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from harness.config.matrix import Cell, MatrixError, Model, Scenario, load
from harness.fixtures import presets
from harness.measure import runner
from harness.measure.models import ModelPaths, offload_cpu_share_mb

if TYPE_CHECKING:
    from harness.config.matrix import Stack

REPO = Path(__file__).resolve().parents[2]


def test_tensors_are_cut_into_parts_of_about_equal_bytes() -> None:
    arrays = {f"t{i}": np.zeros(100 + i, dtype=np.float32) for i in range(30)}
    parts = presets._split(arrays, 3)
    assert len(parts) == 3
    assert [k for part in parts for k in part] == list(arrays)  # every tensor once, in order
    sizes = [sum(a.nbytes for a in part.values()) for part in parts]
    assert max(sizes) < 1.2 * min(sizes)
    assert presets._split(arrays, 1) == [arrays]


def test_shard_figures_of_a_folder(tmp_path: Path) -> None:
    for i, size in enumerate((3, 5, 4), 1):
        (tmp_path / f"model-{i:05d}-of-00003.safetensors").write_bytes(b"x" * size * 1024 * 1024)
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    assert ModelPaths(str(tmp_path), str(tmp_path)).shards("safetensors") == (3, 5.0)
    assert ModelPaths(str(tmp_path), str(tmp_path)).shards("bin") is None
    assert ModelPaths("org/name", "org/name").shards("safetensors") is None  # a hub id


def test_only_gpt2_presets_shard(tmp_path: Path) -> None:
    text = (REPO / "matrix.yaml").read_text()
    path = tmp_path / "m.yaml"
    path.write_text(text.replace("  gpt2-124m: {source: preset,", "  gpt2-124m: {source: preset, shards: 3,"))  # fmt: skip
    assert load(path).model("gpt2-124m").shards == 3
    path.write_text(text.replace("  tiny-llama: {source: preset,", "  tiny-llama: {source: preset, shards: 2,"))  # fmt: skip
    with pytest.raises(MatrixError, match=r"models\.tiny-llama\.shards: only the GPT-2 presets"):
        load(path)


@pytest.mark.e2e
def test_a_sharded_preset_loads_the_same_model(
    tmp_path: Path, test_stack: Stack, stack_python: Path
) -> None:
    prompts = ("The quick brown fox",)
    whole = Model("gpt2-124m", "preset", "gpt2-124m", prompts)
    sharded = Model("gpt2-124m-sharded", "preset", "gpt2-124m", prompts, shards=3)
    cells = [Cell(test_stack, m, Scenario(None, None, "float32", fmt, 8))
             for m in (whole, sharded) for fmt in ("safetensors", "bin")]  # fmt: skip
    cfg = runner.RunConfig("shards", tmp_path / "run", "forkserver", 600, 1, runner.default_cache_dir())  # fmt: skip
    records = {(r["model"], r["checkpoint_format"]): r for r in runner.run_stack(test_stack, cells, stack_python, cfg)}  # fmt: skip
    for fmt in ("safetensors", "bin"):
        one, three = records[("gpt2-124m", fmt)], records[("gpt2-124m-sharded", fmt)]
        assert (one["status"], three["status"]) == ("ok", "ok"), three["message"]
        assert one["output_ids"] == three["output_ids"]
        assert (one["shards"], three["shards"]) == (1, 3)
        weights, largest = three["param_bytes"], three["largest_shard_mb"]
        assert weights is not None
        assert largest is not None
        assert weights / 2**20 / 3 * 0.8 < largest < weights / 2**20 / 3 * 1.3


TOKENIZER_CHECK = """
import json, sys
from transformers import AutoTokenizer
tiny, wide = (AutoTokenizer.from_pretrained(p) for p in sys.argv[1:3])
prompts = json.loads(sys.argv[3])
print(json.dumps({
    "size": len(wide), "same_ids": [tiny(p)["input_ids"] == wide(p)["input_ids"] for p in prompts],
    "empty": sum(1 for i in range(0, 50257, 7) if wide.decode([i]) == ""),
    "tiny_empty": sum(1 for i in range(594, 50257, 7) if tiny.decode([i]) == ""),
}))
"""


@pytest.mark.e2e
def test_a_preset_tokenizer_decodes_every_id_and_encodes_as_before(
    tmp_path: Path, stack_python: Path
) -> None:
    tiny = REPO / "harness" / "fixtures" / "tiny_gpt2" / "st"
    presets.widen_tokenizer(tiny, tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert sorted(vocab.values()) == list(range(presets.VOCAB))
    prompts = ["The quick brown fox", "The lighthouse stood on", "Near midnight he saw"]
    proc = subprocess.run(
        [str(stack_python), "-c", TOKENIZER_CHECK, str(tiny), str(tmp_path), json.dumps(prompts)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["size"] == presets.VOCAB
    assert found["same_ids"] == [True, True, True]  # no merge makes the added tokens
    assert found["empty"] == 0
    assert found["tiny_empty"] > 7000  # what the presets decoded to before: nothing


def test_offload_share_is_half_the_weights_when_the_shape_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\0" * (8 * 1024 * 1024))
    (tmp_path / "config.json").write_text("{}")
    # No header, no layer count: half.
    assert offload_cpu_share_mb(str(tmp_path), "safetensors") == 4.0


def test_offload_share_leaves_room_for_the_embedding_and_one_block() -> None:
    """Half of a two-block model is less than accelerate's reserve for one block plus the
    embedding, so it went wholly to disk, which 4.46.3, 4.57.6 and 5.5.4 each fail on."""
    tiny = Path(presets.__file__).parent / "tiny_gpt2" / "st"
    weights = (tiny / "model.safetensors").stat().st_size
    share = offload_cpu_share_mb(str(tiny), "safetensors") * 1024 * 1024
    embedding = 594 * 128 * 4  # wte, the largest tensor
    block = 4 * 128 * 128 * 4 + 2 * 128 * 512 * 4  # attention and MLP weights of one block
    assert embedding + block < share < weights
    assert share > weights / 2


def test_offload_share_counts_only_the_format_loaded(tmp_path: Path) -> None:
    # A hub snapshot often holds both formats of the same weights; counting both doubled it.
    tiny = Path(presets.__file__).parent / "tiny_gpt2"
    for name in ("st/model.safetensors", "bin/pytorch_model.bin", "st/config.json"):
        shutil.copy(tiny / name, tmp_path)
    both = offload_cpu_share_mb(str(tmp_path), "safetensors")
    assert both == offload_cpu_share_mb(str(tiny / "st"), "safetensors")
    bin_only = offload_cpu_share_mb(str(tmp_path), "bin")  # no header to read: half of the .bin
    assert bin_only == max((tmp_path / "pytorch_model.bin").stat().st_size / 2**20 / 2, 1.0)
