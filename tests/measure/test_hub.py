"""A hub model in a real cache layout, made by the test: resolved on the host, run offline."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness import paths
from harness.config.matrix import Cell, Model, Scenario
from harness.golden import store
from harness.measure import hub, runner
from harness.measure.models import resolve_model, weight_files
from harness.measure.spawn import worker_env

if TYPE_CHECKING:
    from harness.config.matrix import Stack

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
TINY = paths.FIXTURES / "tiny_gpt2" / "st"


def make_cache(root: Path, repo: str = "acme/tiny", sha: str = SHA, ref: str = "main") -> Path:
    """The hub client's layout: blobs by hash, snapshots of links to them, refs to commits."""
    base = root / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / sha
    snap.mkdir(parents=True)
    (base / "blobs").mkdir(exist_ok=True)
    for src in TINY.iterdir():
        blob = base / "blobs" / hashlib.sha256(src.read_bytes()).hexdigest()
        shutil.copyfile(src, blob)
        (snap / src.name).symlink_to(os.path.relpath(blob, snap))
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / ref).write_text(sha)
    return snap


def test_a_branch_a_tag_or_a_sha_resolves_to_its_snapshot(tmp_path: Path) -> None:
    snap = make_cache(tmp_path)
    make_cache(tmp_path, sha=OTHER, ref="v1.0")
    assert hub.snapshot("acme/tiny", None, tmp_path) == hub.Snapshot(snap, SHA)
    assert hub.snapshot("acme/tiny", "main", tmp_path) == hub.Snapshot(snap, SHA)
    assert hub.snapshot("acme/tiny", "v1.0", tmp_path).sha == OTHER  # type: ignore[union-attr]
    assert hub.snapshot("acme/tiny", OTHER, tmp_path).sha == OTHER  # type: ignore[union-attr]
    assert hub.snapshot("acme/tiny", "dev", tmp_path) is None  # not cached
    assert hub.snapshot("acme/other", None, tmp_path) is None
    assert hub.snapshot("acme/tiny", "../../refs/main", tmp_path) is None


def test_the_cache_root_follows_the_hub_clients_variables(tmp_path: Path) -> None:
    assert hub.cache_root({"HF_HUB_CACHE": str(tmp_path)}) == tmp_path
    assert hub.cache_root({"HF_HOME": str(tmp_path)}) == tmp_path / "hub"


def test_hf_hub_offline_reaches_a_hub_models_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # It never did: a cached model then spent ~46 s of "load" on network retries.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    python = Path("/usr/bin/python3")
    assert worker_env(python, hub=True)["HF_HUB_OFFLINE"] == "1"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert "HF_HUB_OFFLINE" not in worker_env(python, hub=True)
    assert worker_env(python, hub=False)["HF_HUB_OFFLINE"] == "1"  # never the network


def test_a_cached_hub_model_is_a_local_folder_and_its_weights_are_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    snap = make_cache(tmp_path)
    model = Model("tiny-hub", "hub", "acme/tiny", ("Hi",), "main")
    where = resolve_model(model, "safetensors", Path("/nonexistent"), tmp_path, None)  # type: ignore[arg-type]
    assert (where.model, where.revision) == (str(snap), SHA)
    files = weight_files(model, tmp_path)
    assert [p.name for p in files] == ["model.safetensors"]
    # The branch moves to other weights: the hash moves with it, so goldens go stale.
    before = store.weights_sha256(files)
    other = make_cache(tmp_path, sha=OTHER, ref="main")
    (other / "model.safetensors").unlink()
    (other / "model.safetensors").write_bytes(b"other weights")
    assert store.weights_sha256(weight_files(model, tmp_path)) != before


@pytest.mark.e2e
def test_a_hub_model_runs_offline_from_a_cache_made_by_the_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_stack: Stack, stack_python: Path
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_cache(tmp_path / "hub")
    model = Model("tiny-hub", "hub", "acme/tiny", ("The lighthouse stood on",), "main")
    cell = Cell(test_stack, model, Scenario(None, None, "float32", "safetensors", 8))
    cfg = runner.RunConfig("hub", tmp_path / "run", "forkserver", 300, 1, tmp_path / "cache")
    (record,) = runner.run_stack(test_stack, [cell], stack_python, cfg)
    assert record["status"] == "ok", record["message"]
    assert record["model_revision"] == SHA
    assert record["weights_sha256"]
    assert record["output_text"][0].strip()
    assert record["load_s"] is not None
    assert record["load_s"] < 5  # no network retry is timed as loading
    assert record["load_network_attempts"] == 0
    assert record["warnings"] == []
