"""Where a cell's model comes from: the folder from_pretrained reads, and its weight files."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from harness import paths
from harness.measure.spawn import ISOLATED, worker_env

if TYPE_CHECKING:
    from harness.config.matrix import Model

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class ModelPaths:
    model: str
    tokenizer: str


def fixture_dir(name: str) -> Path:
    return paths.FIXTURES / name.replace("-", "_")


def resolve_model(model: Model, fmt: str, python: Path, cache: Path, log: IO[str]) -> ModelPaths:
    """Where from_pretrained should look; builds a preset into the cache on first use."""
    sub = "st" if fmt == "safetensors" else "bin"
    if model.source == "embedded":
        folder = fixture_dir(model.location) / sub
        return ModelPaths(str(folder), str(folder))
    if model.source == "preset":
        folder = cache / "presets" / model.location
        if not (folder / "manifest.json").exists():
            log.write(f"building preset {model.location} into {folder}\n")
            log.flush()
            subprocess.run(
                [
                    str(python), *ISOLATED, str(paths.PRESETS), "build", model.location,
                    "--cache", str(cache / "presets"),
                    "--tokenizer", str(fixture_dir("tiny-gpt2") / "st"),
                ],
                check=True, stdout=log, stderr=log, env=worker_env(python, hub=False),
            )  # fmt: skip
        return ModelPaths(str(folder / sub), str(folder / sub))
    # local paths and hub ids go to from_pretrained as given
    return ModelPaths(model.location, model.location)


def weight_files(model: Model, cache: Path) -> list[Path]:
    """The files whose hash identifies the model's weights (none for hub ids)."""
    if model.source == "embedded":
        folder = fixture_dir(model.location)
        return [folder / "st" / "model.safetensors", folder / "bin" / "pytorch_model.bin"]
    if model.source == "preset":
        # The .bin is written by whichever torch builds the preset, so its bytes vary with
        # torch's pickle format; the safetensors file is the deterministic one.
        return [cache / "presets" / model.location / "st" / "model.safetensors"]
    if model.source == "local":
        folder = Path(model.location)
        if folder.is_dir():
            return sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    return []
