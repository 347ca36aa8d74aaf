"""Record or refresh goldens from one stack of a run: `nox -s golden -- --from STACK_ID`.

Prints what would change and writes only with --write. Never blesses from a record whose
status is not ok, and refuses when the ok records of a case disagree.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import paths, usage
from harness import records as rec
from harness.golden import store as golden

if TYPE_CHECKING:
    from collections.abc import Sequence

USAGE_EXIT = usage.USAGE_EXIT
UsageError = usage.UsageError
REFUSED_EXIT = 1
REPORTS = paths.REPORTS


class BlessError(Exception):
    """Blessing was refused; nothing is written."""


@dataclass(frozen=True)
class Change:
    golden: golden.Golden
    path: Path
    kind: str  # new | unchanged | changed
    note: str


def _reference(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The plainest scenario: safetensors, keywords omitted, no device_map, first repeat."""

    def plainness(r: dict[str, Any]) -> tuple[int, int, int, int]:
        return (
            r["checkpoint_format"] != "safetensors",
            r["low_cpu_mem_usage"] is not None,
            r["device_map"] is not None,
            r["repeat"],
        )

    return min(records, key=plainness)


def plan(
    records: Sequence[dict[str, Any]], stack_id: str, models: Sequence[str] | None, root: Path
) -> list[Change]:
    chosen = [
        r for r in records if r["stack_id"] == stack_id and (not models or r["model"] in models)
    ]
    if not chosen:
        known = sorted({r["stack_id"] for r in records})
        raise UsageError(
            f"no records for stack {stack_id!r} (stacks in this run: {', '.join(known)})"
        )
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in chosen:
        groups.setdefault((r["model"], r["dtype"], int(r["max_new_tokens"])), []).append(r)
    changes: list[Change] = []
    for (model, dtype, n), group in sorted(groups.items()):
        bad = [r for r in group if r["status"] not in rec.GOOD_STATUSES]
        if bad:
            r = bad[0]
            raise BlessError(
                f"refusing to bless {model}/{dtype} from {stack_id}: {r['cell_id']} #{r['repeat']} "
                f"is {r['status']}: {r['message']}"
            )
        ok = [r for r in group if r["status"] == "ok"]
        if not ok:
            raise BlessError(f"refusing to bless {model}/{dtype} from {stack_id}: no ok record")
        ref = _reference(ok)
        for other in ok:
            if other["output_ids"] != ref["output_ids"]:
                raise BlessError(
                    f"refusing to bless {model}/{dtype} from {stack_id}: {other['cell_id']} "
                    f"#{other['repeat']} generated other ids than {ref['cell_id']}"
                )
        for index, prompt in enumerate(ref["prompts"]):
            new = golden.Golden(
                model=model,
                prompt=prompt,
                dtype=dtype,
                max_new_tokens=n,
                ids=tuple(ref["output_ids"][index]),
                text=ref["output_text"][index],
                margins=tuple(ref["margins"][index]),
                weights_sha256=ref.get("weights_sha256"),
                source={
                    "stack_id": stack_id,
                    "run_id": ref["run_id"],
                    "cell_id": ref["cell_id"],
                    "transformers": ref["transformers_version"],
                    "torch": ref["torch_version"],
                    "device": "cuda" if ref.get("cuda_peak_mb") else "cpu",
                    "machine_fingerprint": ref.get("machine_fingerprint"),
                    "blessed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                },
            )
            changes.append(_change(new, root))
    return changes


def _change(new: golden.Golden, root: Path) -> Change:
    key = golden.CaseKey(new.model, new.prompt, new.dtype, new.max_new_tokens)
    path = key.path(root)
    if not path.exists():
        return Change(new, path, "new", f"{new.text!r}")
    old = golden.load_golden(path)
    if old.ids == new.ids and old.weights_sha256 == new.weights_sha256:
        return Change(new, path, "unchanged", "")
    notes = []
    if old.ids != new.ids:
        diff = golden.compare(new.ids, old.ids, old.margins, float("inf"))
        notes.append(f"ids differ from position {diff['position']}: {old.text!r} -> {new.text!r}")
    if old.weights_sha256 != new.weights_sha256:
        notes.append(f"weights {str(old.weights_sha256)[:12]} -> {str(new.weights_sha256)[:12]}")
    return Change(new, path, "changed", "; ".join(notes))


def main(argv: Sequence[str] | None = None) -> int:
    parser = usage.Parser(prog="nox -s golden --")
    parser.add_argument("--from", dest="stack", required=True, help="the stack id to bless from")
    parser.add_argument("--models", default=None, help="model ids, comma-separated")
    parser.add_argument("--run", type=Path, default=REPORTS / "latest", help="run folder")
    parser.add_argument("--goldens", type=Path, default=golden.GOLDENS)
    parser.add_argument("--write", action="store_true", help="write the goldens (default: dry run)")
    try:
        ns = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        if not (ns.run / "raw").is_dir():
            raise UsageError(f"{ns.run}: no such run folder")
        models = [m for m in ns.models.split(",") if m] if ns.models else None
        changes = plan(rec.read_run(ns.run), ns.stack, models, ns.goldens)
    except UsageError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return USAGE_EXIT
    except BlessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return REFUSED_EXIT
    for change in changes:
        rel = (
            change.path.relative_to(ns.goldens)
            if change.path.is_relative_to(ns.goldens)
            else change.path
        )
        print(f"{change.kind:>9}  {rel}  {change.note}".rstrip())
    pending = [c for c in changes if c.kind != "unchanged"]
    if not ns.write:
        print(f"{len(pending)} golden(s) would change; nothing written (add --write)")
        return 0
    for change in pending:
        golden.write_golden(ns.goldens, change.golden)
    print(f"wrote {len(pending)} golden(s) under {ns.goldens}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
