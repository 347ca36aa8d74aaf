"""Where a cell's model comes from: the folder from_pretrained reads, and its weight files."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from harness import paths
from harness.config.models import FAMILY_PRESETS
from harness.fixtures.presets import folder_name, tokenizer_current
from harness.measure import hub
from harness.measure.spawn import ISOLATED, worker_env
from harness.metrics import MIB

if TYPE_CHECKING:
    from harness.config.matrix import Model

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class ModelPaths:
    model: str
    tokenizer: str
    revision: str | None = None  # a hub model's commit, resolved in the local cache

    def shards(self, fmt: str) -> tuple[int, float] | None:
        """How many weight files of this format the folder holds, and the largest in MiB."""
        files = format_files(Path(self.model), fmt)
        if not files:
            return None
        return len(files), round(max(p.stat().st_size for p in files) / MIB, 3)


def format_files(folder: Path, fmt: str) -> list[Path]:
    """The weight files a load of this checkpoint format reads (a folder may hold both)."""
    suffix = ".safetensors" if fmt == "safetensors" else ".bin"
    return sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []


def fixture_dir(name: str) -> Path:
    return paths.FIXTURES / name.replace("-", "_")


def resolve_model(model: Model, fmt: str, python: Path, cache: Path, log: IO[str]) -> ModelPaths:
    """Where from_pretrained should look; builds a preset into the cache on first use."""
    sub = "st" if fmt == "safetensors" else "bin"
    if model.source == "embedded":
        folder = fixture_dir(model.location) / sub
        return ModelPaths(str(folder), str(folder))
    if model.source == "preset":
        folder = cache / "presets" / folder_name(model.location, model.shards)
        family = model.location in FAMILY_PRESETS
        if not (folder / "manifest.json").exists() or not (family or tokenizer_current(folder)):
            log.write(f"building preset {model.location} into {folder}\n")
            log.flush()
            sharded = ["--shards", str(model.shards)] if model.shards > 1 else []
            subprocess.run(
                [
                    str(python), *ISOLATED, str(paths.FAMILIES if family else paths.PRESETS),
                    "build", model.location, *sharded,
                    "--cache", str(cache / "presets"),
                    "--tokenizer", str(fixture_dir("tiny-gpt2") / "st"),
                ],
                check=True, stdout=log, stderr=log, env=worker_env(python, hub=False),
            )  # fmt: skip
        return ModelPaths(str(folder / sub), str(folder / sub))
    if model.source == "hub":
        found = hub.snapshot(model.location, model.revision)
        if found is not None:  # a local folder: nothing of the network is timed as loading
            return ModelPaths(str(found.folder), str(found.folder), found.sha)
    # local paths, and hub ids not in the cache, go to from_pretrained as given
    return ModelPaths(model.location, model.location)


def weight_files(model: Model, cache: Path) -> list[Path]:
    """The files whose hash identifies the model's weights (none for uncached hub ids)."""
    if model.source == "embedded":
        fixture = fixture_dir(model.location)
        return [fixture / "st" / "model.safetensors", fixture / "bin" / "pytorch_model.bin"]
    if model.source == "preset":
        # The .bin is written by whichever torch builds the preset, so its bytes vary with
        # torch's pickle format; the safetensors file is the deterministic one.
        preset = cache / "presets" / folder_name(model.location, model.shards)
        return sorted((preset / "st").glob("*.safetensors"))
    found = hub.snapshot(model.location, model.revision) if model.source == "hub" else None
    folder = found.folder if found else Path(model.location) if model.source == "local" else None
    if folder is not None and folder.is_dir():
        # A hub snapshot's files are links into its blobs: the hash follows them.
        return sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    return []


def offload_cpu_share_mb(folder: str, fmt: str) -> float:
    """Offload's CPU memory: room for the embedding and one block plus half of the rest.
    accelerate keeps the largest block's room free on the last device before disk; with only
    half the weights, a two-block model would go wholly to disk, which versions refuse or break
    on (a different failure from the one this axis measures)."""
    path = Path(folder)
    files = format_files(path, fmt)
    total = float(sum(f.stat().st_size for f in files))
    largest = max((_largest_tensor(f) for f in files if f.suffix == ".safetensors"), default=0)
    blocks = _block_count(path)
    if not largest or not blocks:  # unknown shape: half the weights
        return max(total / MIB / 2, 1.0)
    block = (total - largest) / blocks
    return max((largest + block + (total - largest - block) / 2) / MIB, 1.0)


def _largest_tensor(path: Path) -> int:
    """The largest tensor in a safetensors file, from its JSON header (usually the embedding)."""
    try:
        with path.open("rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        spans = [v["data_offsets"] for k, v in header.items() if k != "__metadata__"]
        return int(max((end - start for start, end in spans), default=0))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0  # not a header this can read: the share falls back to half the weights


def _block_count(folder: Path) -> int:
    """Transformer blocks, summed over encoder and decoder, from config.json's common keys."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    keys = ("num_hidden_layers", "n_layer", "num_layers", "num_decoder_layers",
            "encoder_layers", "decoder_layers")  # fmt: skip
    return sum(int(config[k]) for k in keys if isinstance(config.get(k), int))
