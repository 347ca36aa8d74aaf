"""goldens/expectations.yaml: known, intended differences from a golden, validated.

A list of entries; each names a model, optionally a prompt, dtype, device and version
specifiers for transformers and torch, the token ids expected instead, and a written
reason. Any problem is an `ExpectationsError` of one line, ``<file>:<line>: <key>: <problem>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BeforeValidator, TypeAdapter, ValidationError

from harness.config.entry import Entry
from harness.config.fields import Text, fail
from harness.config.matrix import validation_problem
from harness.config.source import SourceError, parse, read

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ExpectationEntry", "ExpectationsError", "load_expectations"]


class ExpectationsError(ValueError):
    """A malformed expectations file; str() is one line."""


def _specifier(value: object) -> str:
    if not isinstance(value, str):
        raise fail("expected a version specifier string like '>=4.47,<5'", shown=value)
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise fail(f"bad version specifier {value!r}") from None
    return value


def _reason(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail("every expectation needs a written reason")
    return value.strip()


def _ids(value: object) -> object:
    if isinstance(value, list) and all(type(x) is int for x in value):
        return value
    raise fail("expected a list of token ids", shown=value)


Specifier = Annotated[str, BeforeValidator(_specifier)]


class ExpectationEntry(Entry):
    model: Text
    prompt: Text | None = None
    dtype: Text | None = None
    transformers: Specifier | None = None
    torch: Specifier | None = None
    device: Text | None = None
    ids: Annotated[tuple[int, ...], BeforeValidator(_ids)]
    reason: Annotated[str, BeforeValidator(_reason)]


def _entries(value: object) -> object:
    if not isinstance(value, list):
        raise fail("expected a list of expectations", shown=value)
    return value


_FILE: TypeAdapter[tuple[ExpectationEntry, ...]] = TypeAdapter(
    Annotated[tuple[ExpectationEntry, ...], BeforeValidator(_entries)]
)


def _reason_first(data: Any) -> Any:  # noqa: ANN401
    """A missing reason is reported as such, not as a missing key."""
    if isinstance(data, list):
        return [{"reason": None, **d} if isinstance(d, dict) else d for d in data]
    return data


def load_expectations(path: Path) -> tuple[ExpectationEntry, ...]:
    """The entries of `path`; () when it does not exist."""
    if not path.exists():
        return ()
    label = str(path)
    try:
        source = parse(read(path, label), label)
    except SourceError as exc:
        raise ExpectationsError(str(exc)) from None
    try:
        return _FILE.validate_python(_reason_first(source.data or []))
    except ValidationError as exc:
        raise ExpectationsError(validation_problem(source, exc)) from None
