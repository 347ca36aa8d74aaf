"""A Hub model in the user's local cache, resolved on the host: the worker loads a local folder
(no network call is timed as loading) and the record names the commit. A model not in the cache
goes to from_pretrained as a repo id; the user's HF_HUB_OFFLINE decides whether it downloads."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

SHA_RE = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    sha: str


def cache_root(environ: dict[str, str] | None = None) -> Path:
    """HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub: as the hub client."""
    env = os.environ if environ is None else environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    home = Path(env["HF_HOME"]) if env.get("HF_HOME") else Path.home() / ".cache" / "huggingface"
    return home / "hub"


def snapshot(repo: str, revision: str | None, root: Path | None = None) -> Snapshot | None:
    """The cached snapshot of `repo` at `revision` (a branch, a tag or a commit sha; None:
    main), or None when the cache does not hold it."""
    # The hub client's layout: refs/<branch|tag> holds a commit sha, snapshots/<sha>/ the files.
    base = (root or cache_root()) / f"models--{repo.replace('/', '--')}"
    wanted = revision or "main"
    if SHA_RE.fullmatch(wanted):
        sha = wanted
    else:
        ref = base / "refs" / wanted
        if not ref.is_file() or ".." in Path(wanted).parts:
            return None
        sha = ref.read_text(encoding="utf-8").strip()
    folder = base / "snapshots" / sha
    if not SHA_RE.fullmatch(sha) or not (folder / "config.json").is_file():
        return None
    return Snapshot(folder, sha)
