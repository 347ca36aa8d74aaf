"""Where a cell's model comes from: the folder from_pretrained reads, and its weight files."""

from __future__ import annotations

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
        suffix = ".safetensors" if fmt == "safetensors" else ".bin"
        folder = Path(self.model)
        files = sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []
        if not files:
            return None
        return len(files), round(max(p.stat().st_size for p in files) / MIB, 3)


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
