"""Golden outputs: the store, the verdicts, and declared expectations.

A golden holds the token ids, text and per-step top-1 minus top-2 margins of a reference
run, one JSON file per (model, prompt, generation settings, dtype). A first differing
token at a step where the reference was nearly tied is float noise (`drift`); where the
reference was confident it is a real change (`mismatch`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from harness import paths
from harness.config import expectations
from harness.metrics import GOLDEN_RANK

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from harness.metrics import GoldenVerdict
    from harness.records import GoldenDetail, GoldenFields, Record

GOLDEN_VERSION = 1
GOLDENS = paths.GOLDENS
EXPECTATIONS_FILE = "expectations.yaml"


class GoldenError(Exception):
    """A malformed golden or expectations file: one line, exit code 2."""


@dataclass(frozen=True)
class Golden:
    model: str
    prompt: str
    dtype: str
    max_new_tokens: int
    ids: tuple[int, ...]
    text: str
    margins: tuple[float, ...]
    weights_sha256: str | None
    source: Mapping[str, object]

    def to_json(self) -> dict[str, object]:
        # The head fixes the key order of the files; the fields follow in declaration order.
        head = {"golden_version": GOLDEN_VERSION, "model": "", "prompt": "", "decoding": "greedy"}
        return {**head, **asdict(self), "ids": list(self.ids), "margins": list(self.margins),
                "source": dict(self.source)}  # fmt: skip


@dataclass(frozen=True)
class Expectation:
    """A known, intended difference: other ids under some versions or devices."""

    model: str
    prompt: str | None
    dtype: str | None
    transformers: SpecifierSet | None
    torch: SpecifierSet | None
    device: str | None
    ids: tuple[int, ...]
    reason: str

    def matches(self, key: CaseKey, versions: Mapping[str, str | None], device: str) -> bool:
        pinned = ((self.prompt, key.prompt), (self.dtype, key.dtype), (self.device, device))
        if self.model != key.model or any(p is not None and p != v for p, v in pinned):
            return False
        for name, spec in (("transformers", self.transformers), ("torch", self.torch)):
            if spec is None:
                continue
            try:  # an unknown version ("") is invalid: a keyed expectation must not match it
                version = Version((versions.get(name) or "").split("+")[0])
            except InvalidVersion:
                return False
            if not spec.contains(version, prereleases=True):
                return False
        return True


@dataclass(frozen=True)
class CaseKey:
    model: str
    prompt: str
    dtype: str
    max_new_tokens: int

    def path(self, root: Path) -> Path:
        slug = re.sub(r"[^a-z0-9]+", "-", self.prompt.lower()).strip("-")[:40] or "prompt"
        digest = hashlib.sha256(self.prompt.encode()).hexdigest()[:8]
        name = f"{self.dtype}-greedy-n{self.max_new_tokens}-{slug}-{digest}.json"
        return root / self.model / name


def load_golden(path: Path) -> Golden:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Golden(
            data["model"], data["prompt"], data["dtype"], int(data["max_new_tokens"]),
            tuple(int(i) for i in data["ids"]), data["text"],
            tuple(float(m) for m in data["margins"]), data.get("weights_sha256"),
            data.get("source", {}),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GoldenError(f"{path}: not a golden file: {exc}") from None


def write_golden(root: Path, golden: Golden) -> Path:
    key = CaseKey(golden.model, golden.prompt, golden.dtype, golden.max_new_tokens)
    path = key.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(golden.to_json(), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_expectations(root: Path) -> tuple[Expectation, ...]:
    """The expectations of `root` (validated by harness/config/expectations.py)."""
    try:
        entries = expectations.load_expectations(root / EXPECTATIONS_FILE)
    except expectations.ExpectationsError as exc:
        raise GoldenError(str(exc)) from None

    def spec(text: str | None) -> SpecifierSet | None:
        return None if text is None else SpecifierSet(text)

    out = []
    for e in entries:
        specs = (spec(e.transformers), spec(e.torch))
        out.append(Expectation(e.model, e.prompt, e.dtype, *specs, e.device, e.ids, e.reason))
    return tuple(out)


def compare(
    actual: Sequence[int], expected: Sequence[int], margins: Sequence[float], tolerance: float
) -> GoldenDetail:
    """Verdict for one output: match, drift (a near-tie flipped) or mismatch."""
    if list(actual) == list(expected):
        return {"verdict": "match"}
    position = next(
        (i for i, (a, e) in enumerate(zip(actual, expected, strict=False)) if a != e),
        min(len(actual), len(expected)),
    )
    margin = margins[position] if position < len(margins) else None
    verdict: GoldenVerdict = "drift" if margin is not None and margin < tolerance else "mismatch"
    return {"verdict": verdict, "position": position, "reference_margin": margin,
            "tolerance": tolerance}  # fmt: skip


@dataclass(frozen=True)
class Judge:
    """Judges records against the goldens under `root`."""

    root: Path
    tolerances: Mapping[str, float]
    expectations: tuple[Expectation, ...] = ()

    @classmethod
    def open(cls, root: Path, tolerances: Mapping[str, float]) -> Judge:
        return cls(root=root, tolerances=tolerances, expectations=load_expectations(root))

    def judge(self, record: Record) -> GoldenFields:
        """`golden` and `golden_detail` for one record; None for a record without output."""
        if record.get("status") != "ok":
            return {"golden": None, "golden_detail": []}
        details: list[GoldenDetail] = []
        for prompt, ids, text in zip(
            record["prompts"], record["output_ids"], record["output_text"], strict=False
        ):
            key = CaseKey(record["model"], prompt, record["dtype"], int(record["max_new_tokens"]))
            details.append({"prompt": prompt, **self._one(key, ids, text, record)})
        # The worst verdict of a record's prompts is the record's verdict.
        missing: GoldenVerdict = "missing"
        verdicts = [d.get("verdict", missing) for d in details] or [missing]
        worst = max(verdicts, key=GOLDEN_RANK.__getitem__)
        return {"golden": worst, "golden_detail": details}

    def stamp(self, record: Record) -> None:
        found = self.judge(record)
        record["golden"], record["golden_detail"] = found["golden"], found["golden_detail"]

    def _one(self, key: CaseKey, ids: Sequence[int], text: str, record: Record) -> GoldenDetail:
        path = key.path(self.root)
        if not path.exists():
            return {"verdict": "missing", "file": str(path.relative_to(self.root))}
        golden = load_golden(path)
        current = record.get("weights_sha256")
        if golden.weights_sha256 and current and golden.weights_sha256 != current:
            return {
                "verdict": "stale",
                "golden_sha256": golden.weights_sha256,
                "model_sha256": current,
            }
        tolerance = float(self.tolerances.get(key.dtype, 0.0))
        versions = {
            "transformers": record.get("transformers_version"),
            "torch": record.get("torch_version"),
        }
        on_cuda = record.get("device_map") in ("cuda", "auto") and record.get("cuda_peak_mb")
        device = "cuda" if on_cuda else "cpu"
        matching = [e for e in self.expectations if e.matches(key, versions, device)]
        if len(matching) > 1:
            # Never pick one of several silently: the declarations must be fixed.
            reasons = "; ".join(e.reason for e in matching)
            return {"verdict": "mismatch", "error": f"ambiguous expectations: {reasons}"}
        if matching:
            found = compare(ids, matching[0].ids, (), tolerance)
            return {**found, "expectation": matching[0].reason}
        found = compare(ids, golden.ids, golden.margins, tolerance)
        if found["verdict"] == "mismatch":
            pos = found["position"]
            found["expected_text"] = golden.text
            found["actual_text"] = text
            found["expected_id"] = golden.ids[pos] if pos < len(golden.ids) else None
            found["actual_id"] = ids[pos] if pos < len(ids) else None
        return found


def counts(records: Iterable[Mapping[str, object]]) -> dict[str, int]:
    return dict(Counter(v for r in records if isinstance(v := r.get("golden"), str) and v))


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def weights_sha256(files: Iterable[Path]) -> str | None:
    """One hash over the weight files (names and contents); None when there are none."""
    parts = sorted((p.name, file_sha256(p)) for p in files if p.is_file())
    if not parts:
        return None
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
