"""Golden outputs: the store, the verdicts, and declared expectations.

One JSON file per (model, prompt, generation settings, dtype, quantization, batch size): batching
and int8 may change rounding, so their outputs have goldens of their own. The verdicts (match,
drift, mismatch, tokenizer, stale, missing) are in the README, "Goldens: did the output change?".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypeVar

from packaging.specifiers import SpecifierSet

from harness import paths
from harness.config import expectations, ids
from harness.metrics import GOLDEN_RANK

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from harness.metrics import GoldenVerdict
    from harness.records import GoldenDetail, GoldenFields, Record

GOLDEN_VERSION = 3  # 2 added runner_up, tokens and input_ids; 3 batch and quantization
CONTEXT_TOKENS = 4  # decoded tokens shown before a first divergence
T = TypeVar("T")
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
    # Version 1 files lack these: a difference against them can never be drift.
    runner_up: tuple[int, ...] = ()
    tokens: tuple[str, ...] = ()
    input_ids: tuple[int, ...] | None = None
    batch: int = 1
    quantization: str = "none"

    @property
    def key(self) -> CaseKey:
        return CaseKey(self.model, self.prompt, self.dtype, self.max_new_tokens,
                       self.batch, self.quantization)  # fmt: skip

    def to_json(self) -> dict[str, object]:
        # The head fixes the key order of the files; the fields follow in declaration order.
        head = {"golden_version": GOLDEN_VERSION, "model": "", "prompt": "", "decoding": "greedy"}
        return {**head, **asdict(self), "ids": list(self.ids), "margins": list(self.margins),
                "source": dict(self.source), "runner_up": list(self.runner_up),
                "tokens": list(self.tokens),
                "input_ids": None if self.input_ids is None else list(self.input_ids)}  # fmt: skip


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
            version = ids.parse_version(versions.get(name) or "")
            # An unknown version is not one: a keyed expectation must not match it.
            if version is None or not spec.contains(version, prereleases=True):
                return False
        return True


@dataclass(frozen=True)
class CaseKey:
    model: str
    prompt: str
    dtype: str
    max_new_tokens: int
    batch: int = 1
    quantization: str = "none"

    @classmethod
    def of(cls, record: Mapping[str, object], prompt: str, *, batch: int | None = None) -> CaseKey:
        """The case of one prompt of a record; `batch` overrides the record's batch size."""
        size = batch or int(str(record.get("batch") or 1))
        n = int(str(record["max_new_tokens"]))
        quant = str(record.get("quantization") or "none")
        return cls(str(record["model"]), prompt, str(record["dtype"]), n, size, quant)

    def path(self, root: Path) -> Path:
        slug = re.sub(r"[^a-z0-9]+", "-", self.prompt.lower()).strip("-")[:40] or "prompt"
        digest = hashlib.sha256(self.prompt.encode()).hexdigest()[:8]
        # Defaults are not named, so the files of unbatched, unquantized cases keep their names.
        dtype = self.dtype if self.quantization == "none" else f"{self.dtype}-{self.quantization}"
        batch = f"-b{self.batch}" if self.batch != 1 else ""
        name = f"{dtype}-greedy-n{self.max_new_tokens}{batch}-{slug}-{digest}.json"
        return root / self.model / name


def load_golden(path: Path) -> Golden:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Golden(
            data["model"], data["prompt"], data["dtype"], int(data["max_new_tokens"]),
            tuple(int(i) for i in data["ids"]), data["text"],
            tuple(float(m) for m in data["margins"]), data.get("weights_sha256"),
            data.get("source", {}), tuple(int(i) for i in data.get("runner_up", ())),
            tuple(str(t) for t in data.get("tokens", ())),
            None if data.get("input_ids") is None else tuple(int(i) for i in data["input_ids"]),
            int(data.get("batch", 1)), str(data.get("quantization", "none")),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GoldenError(f"{path}: not a golden file: {exc}") from None


def write_golden(root: Path, golden: Golden) -> Path:
    path = golden.key.path(root)
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


@dataclass(frozen=True)
class Side:
    """One side's output for one prompt: ids, and per step the margin, runner-up and token."""

    ids: Sequence[int]
    margins: Sequence[float] = ()
    runner_up: Sequence[int] = ()
    tokens: Sequence[str] = ()


def _at(values: Sequence[T], i: int) -> T | None:
    return values[i] if 0 <= i < len(values) else None


def first_difference(a: Sequence[object], b: Sequence[object]) -> int | None:
    """The first index where `a` and `b` differ (the shorter's length if one is a prefix)."""
    if list(a) == list(b):
        return None
    found = (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    return next(found, min(len(a), len(b)))


def compare(actual: Side, reference: Side, tolerance: float) -> GoldenDetail:
    """match, drift (the reference's runner-up, both margins under `tolerance`) or mismatch.

    A near-tie on the reference alone is not drift: any token or other weights would pass."""
    position = first_difference(actual.ids, reference.ids)
    if position is None:
        return {"verdict": "match"}
    ref_margin, cand_margin = _at(reference.margins, position), _at(actual.margins, position)
    runner_up, token = _at(reference.runner_up, position), _at(actual.ids, position)
    tied = all(m is not None and m < tolerance for m in (ref_margin, cand_margin))
    verdict: GoldenVerdict = "drift" if tied and token is not None and token == runner_up else "mismatch"  # fmt: skip  # noqa: E501
    context = reference.tokens[max(0, position - CONTEXT_TOKENS) : position]
    return {
        "verdict": verdict, "position": position, "reference_margin": ref_margin,
        "candidate_margin": cand_margin, "reference_runner_up": runner_up,
        "tolerance": tolerance, "expected_id": _at(reference.ids, position), "actual_id": token,
        "expected_token": _at(reference.tokens, position),
        "actual_token": _at(actual.tokens, position),
        "context": "".join(context) if reference.tokens else None,
    }  # fmt: skip


def describe(detail: Mapping[str, object]) -> str:
    """A verdict's first divergence in words: position, both tokens, both margins, context."""
    verdict = str(detail.get("verdict", "?"))
    if verdict == "tokenizer":
        return (f"tokenizer changed: input token {detail.get('input_position')} is "
                f"{detail.get('actual_input_id')}, expected {detail.get('expected_input_id')}")  # fmt: skip  # noqa: E501
    if detail.get("position") is None:
        return verdict

    def token(name: str) -> str:
        text, token_id = detail.get(f"{name}_token"), detail.get(f"{name}_id")
        shown = repr(text) if text is not None else f"id {token_id}"
        value = detail.get(f"{'reference' if name == 'expected' else 'candidate'}_margin")
        return f"{shown} (margin {value:.3g})" if isinstance(value, int | float) else shown

    out = f"{verdict} at new token {detail['position']}"
    if detail.get("expected_id") is not None or detail.get("actual_id") is not None:
        out += f": expected {token('expected')}, got {token('actual')}"
    if detail.get("context"):
        out += f" after {str(detail['context'])!r}"
    cause = {"batching": "batching: the unbatched golden gives this output",
             "version": "not batching: the unbatched golden differs too"}.get(str(detail.get("cause")))  # fmt: skip  # noqa: E501
    return f"{out} ({cause})" if cause else out


def tokenizer_detail(actual: Sequence[int], expected: Sequence[int] | None) -> GoldenDetail | None:
    """A `tokenizer` verdict when the prompt's input ids differ from the expected ones."""
    if expected is None or not actual:
        return None
    position = first_difference(actual, expected)
    if position is None:
        return None
    return {"verdict": "tokenizer", "input_position": position,
            "expected_input_id": _at(expected, position),
            "actual_input_id": _at(actual, position)}  # fmt: skip


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
        for i, (prompt, text) in enumerate(zip(record["prompts"], record["output_text"], strict=False)):  # fmt: skip  # noqa: E501
            key = CaseKey.of(record, prompt)
            details.append({"prompt": prompt, **self._one(key, side(record, i), text, record, i)})
        # The worst verdict of a record's prompts is the record's verdict.
        missing: GoldenVerdict = "missing"
        verdicts = [d.get("verdict", missing) for d in details] or [missing]
        worst = max(verdicts, key=GOLDEN_RANK.__getitem__)
        return {"golden": worst, "golden_detail": details}

    def stamp(self, record: Record) -> None:
        found = self.judge(record)
        record["golden"], record["golden_detail"] = found["golden"], found["golden_detail"]

    def _one(self, key: CaseKey, ids: Side, text: str, record: Record, i: int) -> GoldenDetail:
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
        inputs = record.get("input_ids") or []
        changed = tokenizer_detail(inputs[i] if i < len(inputs) else [], golden.input_ids)
        if changed is not None:
            return changed
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
            found = compare(ids, Side(matching[0].ids), tolerance)
            return {**found, "expectation": matching[0].reason}
        reference = Side(golden.ids, golden.margins, golden.runner_up, golden.tokens)
        found = compare(ids, reference, tolerance)
        if found["verdict"] == "mismatch":
            found["expected_text"] = golden.text
            found["actual_text"] = text
        if found["verdict"] != "match" and key.batch != 1:
            found["cause"] = self._batch_cause(key, ids, tolerance)
        return found

    def _batch_cause(self, key: CaseKey, ids: Side, tolerance: float) -> str:
        """`batching` when the unbatched golden gives this output (batching's rounding made
        the difference), `version` when it does not either; unknown without that golden."""
        single = dataclasses.replace(key, batch=1).path(self.root)
        if not single.exists():
            return "unknown"
        one = load_golden(single)
        verdict = compare(ids, Side(one.ids, one.margins, one.runner_up, one.tokens), tolerance)
        return "batching" if verdict["verdict"] != "mismatch" else "version"


def side(record: Record, i: int) -> Side:
    """Prompt `i`'s output in a record (older records lack runner-ups and tokens)."""

    def nth(values: Sequence[Sequence[T]] | None) -> Sequence[T]:
        return values[i] if values and i < len(values) else ()

    return Side(nth(record["output_ids"]), nth(record.get("margins")),
                nth(record.get("runner_up")), nth(record.get("output_tokens")))  # fmt: skip


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
