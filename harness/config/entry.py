"""The base of every matrix.yaml entry, and the field types the entries share."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from harness.config import fields as f

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


def under(at: str, check: Callable[[], T]) -> T:
    """`check()`, run by an entry's validator; its error is moved down to the field `at`."""
    try:
        return check()
    except PydanticCustomError as exc:
        raise PydanticCustomError(
            "harness", "{problem}", {**(exc.context or {}), "at": at}
        ) from None


class Entry(BaseModel):
    """A mapping of known keys: an unknown one fails, with a "did you mean" hint."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: object) -> object:
        if not isinstance(data, dict):
            raise f.fail("expected a mapping", shown=data)
        allowed = list(cls.model_fields)
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problem = f"unknown key {key!r} ({hint}allowed: {', '.join(allowed)})"
                raise f.fail(problem, key, key=True)
        return data


def choice(choices: tuple[str, ...]) -> Any:  # noqa: ANN401 - a type
    return Annotated[str, BeforeValidator(f.choice(choices)), Field(json_schema_extra={"enum": list(choices)})]  # fmt: skip  # noqa: E501


def ref(what: str) -> Any:  # noqa: ANN401 - a type
    return Annotated[str, BeforeValidator(f.text(f"a {what} id"))]


def exact_version(example: str) -> Any:  # noqa: ANN401 - a type
    return Annotated[str, BeforeValidator(f.version(example))]


def python_key(value: object) -> str:
    """A `python:` key as a version; run by an entry's validator, so a problem is the key's."""
    check = f.text('a Python version string like "3.11"')
    return under("python", lambda: f.python_version(check(value)))


class InstallKeys(Entry):
    """What a stack or a sweep installs besides transformers and torch. Listed first among
    a subclass's bases: pydantic orders fields from the last base on, so these keys follow
    the subclass's own in messages and in the schema."""

    accelerate: exact_version("1.1.1") | None = None  # type: ignore[valid-type]
    pins: f.values(f.Requirement_) = ()  # type: ignore[valid-type]
    find_links: f.values(f.FindLink) = ()  # type: ignore[valid-type]
    index_url: f.Url | None = None
    torch_backend: f.TorchBackend | None = None
