"""The rules of matrix.yaml that cross entries, after the models checked each entry alone.

Duplicate stack ids, rules and profiles that name an unknown stack or model, include rules
outside their profile's selection, profiles that select no cells: `check` raises
`CheckError` with the key path of the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.config.fields import unknown

if TYPE_CHECKING:
    from collections.abc import Sequence

    from harness.config.matrix import Matrix
    from harness.config.models import MatrixDocument, RuleEntry
    from harness.config.source import Loc, Source


class CheckError(ValueError):
    """A cross-reference problem at `loc` (a key path); `key`: the line is the key's."""

    def __init__(self, loc: Loc, problem: str, *, key: bool = False) -> None:
        super().__init__(problem)
        self.loc, self.problem, self.key = loc, problem, key


Known = dict[str, list[str]]  # "stack" and "model": their ids


def _refs(
    source: Source,
    known: Known,
    loc: Loc,
    what: str,
    values: Sequence[str],
    *,
    scope: tuple[str, Sequence[str]] = ("", ()),
) -> None:
    for i, value in enumerate(values):
        at = (*loc, i) if (*loc, i) in source.lines else loc  # a list, or a scalar
        if value not in known[what]:
            raise CheckError(at, unknown(what, value, known[what]))
        if scope[1] and value not in scope[1]:
            selected = ", ".join(scope[1])
            problem = f"{what} {value!r} is not selected by {scope[0]} (selected: {selected})"
            raise CheckError(at, problem)


def _rules(
    source: Source,
    known: Known,
    loc: Loc,
    entries: Sequence[RuleEntry] | None,
    *,
    scope: tuple[str, Sequence[str], Sequence[str]] = ("", (), ()),
) -> None:
    for i, rule in enumerate(entries or ()):
        _refs(source, known, (*loc, i, "stack"), "stack", rule.stack, scope=(scope[0], scope[1]))
        _refs(source, known, (*loc, i, "model"), "model", rule.model, scope=(scope[0], scope[2]))


def check(doc: MatrixDocument, matrix: Matrix, source: Source) -> None:
    """Raise `CheckError` for the first cross-reference problem in `source`'s document."""
    stacks = [s.id for s in matrix.stacks]
    known = {"stack": stacks, "model": [m.id for m in matrix.models]}
    for i, stack_id in enumerate(stacks):
        if stack_id in stacks[:i]:
            first = stacks.index(stack_id)
            also = f"stacks[{first}], line {source.line(('stacks', first))}"
            raise CheckError(("stacks", i, "id"), f"duplicate stack id {stack_id!r} (also {also})")
    _rules(source, known, ("include",), doc.include)
    _rules(source, known, ("exclude",), doc.exclude)
    for name, profile in doc.profiles.items():
        if profile is not None:
            loc: Loc = ("profiles", name)
            _refs(source, known, (*loc, "models"), "model", profile.models)
            _refs(source, known, (*loc, "stacks"), "stack", profile.stacks)
            # An include rule may only add what the profile selects: a rule naming another
            # model would otherwise be silently ignored.
            scope = (f"profile {name!r}", profile.stacks, profile.models)
            _rules(source, known, (*loc, "include"), profile.include, scope=scope)
            _rules(source, known, (*loc, "exclude"), profile.exclude)
    # Stacks a sweep generates are known only once the index is asked: one stands in for them.
    probe = matrix.with_stand_ins()
    for name in matrix.profiles:
        if not probe.cells(name):
            problem = f"profile {name!r} selects no cells (exclude rules remove them all)"
            raise CheckError(("profiles", name), problem, key=True)
