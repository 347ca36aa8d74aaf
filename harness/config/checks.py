"""The rules of matrix.yaml that cross entries: ids named elsewhere, and profile results.

The pydantic models (harness/config/models.py) check each entry on its own; what needs the
whole file is here: duplicate stack ids, include/exclude rules and profiles that name an
unknown stack or model, include rules outside their profile's selection, and profiles that
select no cells. `check` raises `CheckError` with the key path of the first problem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.config.fields import unknown

if TYPE_CHECKING:
    from collections.abc import Sequence

    from harness.config.matrix import Matrix
    from harness.config.models import MatrixDocument, RuleEntry
    from harness.config.source import Loc, Source

__all__ = ["CheckError", "check"]


class CheckError(ValueError):
    """A cross-reference problem at `loc` (a key path); `key`: the line is the key's."""

    def __init__(self, loc: Loc, problem: str, *, key: bool = False) -> None:
        super().__init__(problem)
        self.loc = loc
        self.problem = problem
        self.key = key


def _items(loc: Loc, given: object, values: Sequence[str]) -> list[tuple[Loc, str]]:
    """Each value with its own key path: `loc[i]` when the YAML gave a list, else `loc`."""
    if isinstance(given, list):
        return [((*loc, i), value) for i, value in enumerate(values)]
    return [(loc, value) for value in values]


def _raw(data: object, loc: Loc) -> object:
    for step in loc:
        if isinstance(data, dict) and isinstance(step, str):
            data = data.get(step)
        elif isinstance(data, list) and isinstance(step, int) and step < len(data):
            data = data[step]
        else:
            return None
    return data


def _refs(  # noqa: PLR0917 - one call per kind of reference
    data: object,
    loc: Loc,
    what: str,
    values: Sequence[str],
    known: Sequence[str],
    scope: tuple[str, Sequence[str]] | None = None,
) -> None:
    for at, value in _items(loc, _raw(data, loc), values):
        if value not in known:
            raise CheckError(at, unknown(what, value, known))
        if scope is not None and scope[1] and value not in scope[1]:
            selected = ", ".join(scope[1])
            problem = f"{what} {value!r} is not selected by {scope[0]} (selected: {selected})"
            raise CheckError(at, problem)


def _rules(
    data: object,
    loc: Loc,
    rules: Sequence[RuleEntry],
    known: tuple[Sequence[str], Sequence[str]],
    scope: tuple[str, Sequence[str], Sequence[str]] | None = None,
) -> None:
    for i, rule in enumerate(rules):
        stacks = None if scope is None else (scope[0], scope[1])
        models = None if scope is None else (scope[0], scope[2])
        _refs(data, (*loc, i, "stack"), "stack", rule.stack, known[0], stacks)
        _refs(data, (*loc, i, "model"), "model", rule.model, known[1], models)


def check(doc: MatrixDocument, matrix: Matrix, source: Source) -> None:
    """Raise `CheckError` for the first cross-reference problem in `source`'s document."""
    data = source.data
    seen: dict[str, int] = {}
    for i, stack in enumerate(matrix.stacks):
        if stack.id in seen:
            first = seen[stack.id]
            also = f"stacks[{first}], line {source.line(('stacks', first))}"
            raise CheckError(("stacks", i, "id"), f"duplicate stack id {stack.id!r} (also {also})")
        seen[stack.id] = i
    known = ([s.id for s in matrix.stacks], [m.id for m in matrix.models])
    _rules(data, ("include",), doc.include or (), known)
    _rules(data, ("exclude",), doc.exclude or (), known)
    for name, profile in doc.profiles.items():
        if profile is None:
            continue
        loc: Loc = ("profiles", name)
        _refs(data, (*loc, "models"), "model", profile.models, known[1])
        _refs(data, (*loc, "stacks"), "stack", profile.stacks, known[0])
        # An include rule may only add what the profile selects: a rule naming another
        # model would otherwise be silently ignored.
        scope = (f"profile {name!r}", profile.stacks, profile.models)
        _rules(data, (*loc, "include"), profile.include or (), known, scope)
        _rules(data, (*loc, "exclude"), profile.exclude or (), known)
    for name in matrix.profiles:
        if not matrix.cells(name):
            problem = f"profile {name!r} selects no cells (exclude rules remove them all)"
            raise CheckError(("profiles", name), problem, key=True)
