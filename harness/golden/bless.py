"""Record or refresh goldens from one stack of a run: `harness golden --from STACK_ID`.

Prints what would change and writes only with --write. Never blesses from a record whose
status is not ok, and refuses when the ok records of a case disagree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness import usage
from harness.golden import store as golden
from harness.metrics import GOOD_STATUSES

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from harness.records import Record

REFUSED_EXIT = 1


class BlessError(Exception):
    """Blessing was refused; nothing is written."""


@dataclass(frozen=True)
class Change:
    golden: golden.Golden
    path: Path
    kind: str  # new | unchanged | changed
    note: str


def _plainness(r: Record) -> tuple[bool, ...]:
    """The plainest scenario: safetensors, keywords omitted, no device_map, the default
    attention, no offload, first repeat."""
    fields = (r["checkpoint_format"] != "safetensors", r["low_cpu_mem_usage"] is not None)
    later = (r.get("attn_requested", "default") != "default", r.get("offload", "none") != "none")
    return (*fields, r["device_map"] is not None, *later, r["repeat"] > 0)


def plan(
    records: Sequence[Record], stack_id: str, models: Sequence[str] | None, root: Path
) -> list[Change]:
    chosen = [
        r for r in records if r["stack_id"] == stack_id and (not models or r["model"] in models)
    ]
    if not chosen:
        known = sorted({r["stack_id"] for r in records})
        raise usage.UsageError(
            f"no records for stack {stack_id!r} (stacks in this run: {', '.join(known)})"
        )
    groups: dict[golden.CaseKey, list[Record]] = {}
    for r in chosen:  # one golden case per prompt; the group's key names no prompt
        groups.setdefault(golden.CaseKey.of(r, ""), []).append(r)
    changes: list[Change] = []
    for case, group in sorted(groups.items(), key=lambda kv: dataclasses.astuple(kv[0])):
        refuse = f"refusing to bless {case.model}/{_label(case)} from {stack_id}"
        for r in group:
            if r["status"] not in GOOD_STATUSES:
                raise BlessError(
                    f"{refuse}: {r['cell_id']} #{r['repeat']} is {r['status']}: {r['message']}"
                )
        ok = [r for r in group if r["status"] == "ok"]
        if not ok:
            raise BlessError(f"{refuse}: no ok record")
        ref = min(ok, key=_plainness)
        for other in ok:
            if other["output_ids"] != ref["output_ids"]:
                raise BlessError(
                    f"{refuse}: {other['cell_id']} #{other['repeat']} generated other ids than "
                    f"{ref['cell_id']}"
                )
        for index, prompt in enumerate(ref["prompts"]):
            source = {
                "stack_id": stack_id, "run_id": ref["run_id"], "cell_id": ref["cell_id"],
                "transformers": ref["transformers_version"], "torch": ref["torch_version"],
                "device": "cuda" if ref.get("cuda_peak_mb") else "cpu",
                "machine_fingerprint": ref.get("machine_fingerprint"),
                "blessed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }  # fmt: skip
            inputs, side = ref.get("input_ids") or [], golden.side(ref, index)
            new = golden.Golden(
                case.model, prompt, case.dtype, case.max_new_tokens, tuple(side.ids),
                ref["output_text"][index], tuple(side.margins), ref.get("weights_sha256"), source,
                tuple(side.runner_up), tuple(side.tokens),
                tuple(inputs[index]) if index < len(inputs) and inputs[index] else None,
                case.batch, case.quantization,
            )  # fmt: skip
            changes.append(_change(new, root))
    return changes


def _label(case: golden.CaseKey) -> str:
    """dtype, then quantization and batch size where they are not the defaults."""
    quant = f"-{case.quantization}" if case.quantization != "none" else ""
    return f"{case.dtype}{quant}" + (f"/batch={case.batch}" if case.batch != 1 else "")


def _change(new: golden.Golden, root: Path) -> Change:
    path = new.key.path(root)
    if not path.exists():
        return Change(new, path, "new", f"{new.text!r}")
    old = golden.load_golden(path)
    extra = ("text", "runner_up", "tokens", "input_ids")
    if old.ids == new.ids and old.weights_sha256 == new.weights_sha256:
        moved = [k for k in extra if getattr(old, k) != getattr(new, k)]
        if not moved:
            return Change(new, path, "unchanged", "")
        return Change(new, path, "changed", f"same ids; other {', '.join(moved)}")
    notes = []
    if old.ids != new.ids:
        position = golden.first_difference(new.ids, old.ids)
        notes.append(f"ids differ from position {position}: {old.text!r} -> {new.text!r}")
    if old.weights_sha256 != new.weights_sha256:
        notes.append(f"weights {str(old.weights_sha256)[:12]} -> {str(new.weights_sha256)[:12]}")
    return Change(new, path, "changed", "; ".join(notes))
