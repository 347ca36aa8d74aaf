"""Release sweeps: stacks generated from version ranges (matrix.yaml `sweeps:`).

An entry names a transformers range, the torch releases to cross it with, a Python and how to
pick among the releases the index offers. Resolving needs the index's listing, which the caller
passes in (harness/decide/releases.py asks pip and caches it), so config stays offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BeforeValidator, Field, model_validator

from harness.config import fields as f
from harness.config import ids
from harness.config.entry import Entry, InstallKeys, exact_version, python_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

PICKS = ("latest-patch-per-minor", "all")
DEFAULT_PICK = "latest-patch-per-minor"


def _specifier(value: object) -> str:
    text = f.text('a version range like ">=4.44,<5.30"')(value)
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        raise f.fail(f'invalid version range {text!r}; expected e.g. ">=4.44,<5.30"') from None
    if not len(spec):
        raise f.fail(f'expected a version range like ">=4.44,<5.30", got {text!r}')
    return text


def _pick(value: object) -> str | int:
    """ "all", "latest-patch-per-minor", or {every: N}: every Nth release, ends kept."""
    if isinstance(value, dict) and list(value) == ["every"]:
        every = value["every"]
        if isinstance(every, int) and not isinstance(every, bool) and every >= 1:
            return every
        raise f.fail(f"every: expected a positive integer, got {every!r}")
    if isinstance(value, str) and value in PICKS:
        return value
    raise f.fail(f"expected one of {', '.join(PICKS)} or {{every: N}}", shown=value)


_EVERY = {
    "type": "object",
    "properties": {"every": {"type": "integer", "minimum": 1}},
    "required": ["every"],
    "additionalProperties": False,
}
Range = Annotated[str, BeforeValidator(_specifier)]
Pick = Annotated[
    str | int,
    BeforeValidator(_pick),
    Field(json_schema_extra={"anyOf": [{"enum": list(PICKS)}, _EVERY]}),
]


class _SweepKeys(Entry):
    transformers: Range
    torch: f.values(exact_version("2.13.0"))  # type: ignore[valid-type]
    python: Annotated[Any, Field(json_schema_extra={"type": "string"})]
    pick: Pick = DEFAULT_PICK


class SweepEntry(InstallKeys, _SweepKeys):
    """One sweep: transformers releases in a range, crossed with the listed torch releases."""

    @model_validator(mode="after")
    def _python(self) -> SweepEntry:
        self.python = python_key(self.python)
        return self

    def releases(self, listed: Iterable[str]) -> list[str]:
        """The released finals in range, in version order, thinned by `pick`."""
        spec = SpecifierSet(self.transformers)
        return pick([v for v in ordered(listed) if Version(v) in spec], self.pick)


def ordered(versions: Iterable[str], *, pre: bool = False) -> list[str]:
    """Valid versions, ascending, one per version (4.51 and 4.51.0 are one), finals only."""
    seen: dict[Version, str] = {}
    for text in versions:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if (version.is_prerelease or version.is_devrelease) and not pre:
            continue
        seen.setdefault(version, text)
    return [seen[v] for v in sorted(seen)]


def pick(versions: Sequence[str], how: str | int) -> list[str]:
    """`versions` (ascending) thinned: the newest patch of each minor, all, or every Nth."""
    if how == "all":
        return list(versions)
    if isinstance(how, int):
        kept = list(versions[::how])
        if versions and kept[-1] != versions[-1]:
            kept.append(versions[-1])  # the newest release always counts
        return kept
    newest: dict[tuple[int, ...], str] = {}
    for text in versions:
        newest[Version(text).release[:2]] = text
    return list(newest.values())


def stacks(
    sweeps: Sequence[SweepEntry], listing: Callable[[str], Iterable[str]], known: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """The stacks the sweeps generate, as Stack keyword arguments, oldest release first; ids
    already in `known` (a stack listed by hand) are left out."""
    taken = set(known)
    out: list[dict[str, Any]] = []
    for sweep in sweeps:
        for tf in sweep.releases(listing("transformers")):
            for torch in sweep.torch:
                stack_id = ids.stack_id(tf, torch, sweep.python)
                if stack_id in taken:
                    continue
                taken.add(stack_id)
                kept = sweep.model_dump(exclude={"transformers", "torch", "pick"})
                out.append({"id": stack_id, "transformers": tf, "torch": torch, **kept})
    return out
