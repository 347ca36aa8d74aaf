"""Field types of the config models: pydantic `Annotated` types with one-line messages.

YAML types matter (``torch: 2.5`` is a float, ``3.10`` is 3.1), so every validator here is
strict: it checks the Python type the YAML scalar became and says what it got. A problem is
a `PydanticCustomError` of type ``harness`` whose context may name `at`, a key or index
below the field where the problem lies, and `key`, whether the line is the key's.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, WrapValidator
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from pydantic import ValidatorFunctionWrapHandler
    from pydantic_core import ErrorDetails

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
PYTHON_RE = re.compile(r"3\.(\d{1,2})")
PYTHON_MINORS = range(8, 15)
REPO_RE = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
TORCH_BACKEND_RE = re.compile(r"auto|cpu|xpu|cu\d+|rocm\d+(\.\d+)*")


DEVICE_MAPS = ("cpu", "auto", "cuda")  # plus None: the keyword is not passed
_NOTHING = object()


def unknown(what: str, name: str, known: Iterable[str]) -> str:
    return f"unknown {what} {name!r} (known: {', '.join(sorted(known))})"


def requirement_name(text: str) -> str:
    return canonicalize_name(Requirement(text).name)


def fail(
    problem: str,
    at: str | int | tuple[str | int, ...] | None = None,
    *,
    key: bool = False,
    shown: object = _NOTHING,
    then: str = "",
    sep: str = ", got ",
) -> PydanticCustomError:
    """The error to raise: `problem` at the field, or at its key or item `at`. With `shown`,
    the message goes on ", got <shown as the YAML wrote it><then>" (see `got`)."""
    ctx: dict[str, Any] = {"problem": problem, "at": at, "key": key}
    if shown is not _NOTHING:
        ctx.update(shown=shown, then=then, sep=sep)
    return PydanticCustomError("harness", "{problem}", ctx)


def got(value: object, raw: str | None = None) -> str:  # noqa: PLR0911 - one per YAML type
    """How a YAML value is shown in a message: its text (`raw`: as the file wrote it) and,
    for non-strings, its YAML type."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{raw or str(value).lower()} (a YAML boolean)"
    if isinstance(value, int):
        return f"{raw or value} (a YAML integer)"
    if isinstance(value, float):
        return f"{raw or value} (a YAML float)"
    if isinstance(value, dt.date):
        return f"{raw or value} (a YAML timestamp)"
    return repr(value)


def _scalar(value: object) -> bool:
    return value is not None and not isinstance(value, dict | list)


def control_character(text: str) -> str | None:
    """The first control, format or unassigned character of `text` (Unicode category C*)."""
    for char in text:
        if unicodedata.category(char).startswith("C"):
            return f"U+{ord(char):04X}"
    return None


def no_control(what: str, value: str) -> str:
    bad = control_character(value)
    if bad is not None:
        raise fail(f"invalid {what} {value!r}: contains the control character {bad}")
    return value


def text(what: str = "a string") -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str):
            quote = "; quote it" if _scalar(value) else ""
            raise fail(f"expected {what}", shown=value, then=quote)
        if not value.strip():
            raise fail(f"expected {what}, got an empty string")
        return value

    return check


def _positive_int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise fail("expected a positive integer", shown=value)
    if value < 1:
        raise fail(f"must be positive, got {value}")
    return value


def _number(value: object, expected: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise fail(f"expected {expected}", shown=value)
    return float(value)


def _positive(value: object) -> float:
    number = _number(value, "a positive number")
    if not math.isfinite(number) or number <= 0:
        raise fail(f"must be positive and finite, got {value}")
    return number


def _fraction(value: object) -> float:
    number = _positive(value)
    if number >= 1:
        raise fail(f"expected a number between 0 and 1, got {value}")
    return number


def _non_negative(value: object) -> float:
    number = _number(value, "a number >= 0")
    if not math.isfinite(number) or number < 0:
        raise fail(f"must be >= 0 and finite, got {value}")
    return number


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise fail("expected true or false", shown=value)
    return value


def choice(choices: Sequence[str]) -> Callable[[object], str]:
    expected = f"one of {', '.join(choices)}"

    def check(value: object) -> str:
        value = text(expected)(value)
        if value not in choices:
            raise fail(f"expected {expected}, got {value!r}")
        return value

    return check


def version(example: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        value = text(f'a version string like "{example}"')(value)
        if value[:1] in "<>=!~^*" or "," in value:
            raise fail(f'expected an exact version like "{example}", got the specifier {value!r}')
        try:
            Version(value)
        except InvalidVersion:
            raise fail(
                f'invalid version {value!r}; expected an exact version like "{example}"'
            ) from None
        if value != value.strip():
            raise fail(f"version {value!r} has surrounding spaces")
        return value

    return check


def python_version(value: str) -> str:
    match = PYTHON_RE.fullmatch(value)
    if match is None or int(match.group(1)) not in PYTHON_MINORS:
        raise fail(f"expected a Python major.minor version from 3.8 to 3.14, got {value!r}")
    return value


def _requirement(value: object) -> str:
    value = text('a requirement string like "numpy<2"')(value)
    try:
        Requirement(value)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "unparsable"
        raise fail(f"invalid requirement {value!r}: {reason}") from None
    return value


def folder(value: str, info: ValidationInfo, what: str = "folder path") -> str:
    """`value` made absolute, from the matrix file's folder; `~user` and NUL bytes fail."""
    no_control(what, value)
    base = Path((info.context or {}).get("base", "."))
    try:
        return str((base / Path(value).expanduser()).resolve())
    except (RuntimeError, ValueError, OSError) as exc:
        raise fail(f"invalid {what} {value!r}: {exc}") from None


def _find_link(value: object, info: ValidationInfo) -> str:
    """A URL, or a folder; relative folders are taken from the matrix file's folder."""
    value = text("a URL or a folder path")(value)
    return value if URL_RE.fullmatch(value) else folder(value, info)


def _url(value: object) -> str:
    value = text("a URL")(value)
    if not URL_RE.fullmatch(value):
        raise fail(f"expected a URL like https://host/simple, got {value!r}")
    return value


def _torch_backend(value: object) -> str:
    value = text('a uv torch backend like "cpu" or "cu124"')(value)
    if not TORCH_BACKEND_RE.fullmatch(value):
        raise fail(f"expected auto, cpu, xpu, cuXYZ or rocmX.Y, got {value!r}")
    return value


def identifier(value: object, what: str = "id") -> str:
    value = text(f"an {what}" if what[0] in "aeiou" else f"a {what}")(value)
    if not ID_RE.fullmatch(value):
        raise fail(f"invalid {what} {value!r}: use letters, digits and . _ + - (no / or spaces)")
    return value


def _label(value: object) -> str:
    return no_control("label", text()(value))


def _prompt(value: object) -> str:
    value = text()(value)
    if "\0" in value:
        raise fail(f"invalid prompt {value!r}: contains a NUL character")
    return value


def _repo(value: object) -> str:
    value = text('a Hub repo id like "gpt2" or "org/name"')(value)
    if not REPO_RE.fullmatch(value):
        raise fail(f"invalid Hub repo id {value!r}")
    return value


def _lcmu(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if value == "omit":
        return None
    raise fail("expected omit, true or false", shown=value)


def _device_map(value: object) -> str | None:
    if value is None or value == "none":
        return None
    if isinstance(value, str) and value in DEVICE_MAPS:
        return value
    raise fail(f"expected none, {', '.join(DEVICE_MAPS)}", shown=value)


def _distinct(value: object, handler: ValidatorFunctionWrapHandler) -> Any:  # noqa: ANN401
    """A scalar or a non-empty list of distinct values, as a tuple."""
    if not isinstance(value, list):
        try:
            return handler([value])
        except ValidationError as exc:  # named at the key, not at an item [0] it lacks
            raise _lifted(exc.errors(include_url=False)[0]) from None
    if not value:
        raise fail("must not be empty (omit the key instead)")
    out = handler(value)
    for i, item in enumerate(out):
        if item in out[:i]:
            raise fail("duplicate value", i, shown=value[i], sep=" ")
    return out


def _lifted(error: ErrorDetails) -> PydanticCustomError:
    below = tuple(error["loc"][1:])
    if error["type"] == "harness":
        ctx = dict(error.get("ctx") or {})
        at = ctx.get("at")
        ctx["at"] = (*below, *(at if isinstance(at, tuple) else () if at is None else (at,)))
        return PydanticCustomError("harness", "{problem}", ctx)
    msg = error["msg"]
    return fail(f"{msg[:1].lower()}{msg[1:]}", below or None, shown=error["input"])


def _a_list(value: object) -> object:
    if not isinstance(value, list):
        raise fail("expected a list", shown=value)
    return value


Text = Annotated[str, BeforeValidator(text())]
Label = Annotated[str, BeforeValidator(_label)]
Prompt = Annotated[str, BeforeValidator(_prompt)]
PositiveInt = Annotated[int, BeforeValidator(_positive_int), Field(ge=1)]
PositiveNumber = Annotated[float, BeforeValidator(_positive), Field(gt=0)]
Fraction = Annotated[float, BeforeValidator(_fraction), Field(gt=0, lt=1)]
NonNegative = Annotated[float, BeforeValidator(_non_negative), Field(ge=0)]
Bool = Annotated[bool, BeforeValidator(_boolean)]
Id = Annotated[str, BeforeValidator(identifier), Field(pattern=f"^{ID_RE.pattern}$")]
Requirement_ = Annotated[str, BeforeValidator(_requirement)]
FindLink = Annotated[str, BeforeValidator(_find_link)]
Url = Annotated[str, BeforeValidator(_url)]
TorchBackend = Annotated[str, BeforeValidator(_torch_backend)]
Repo = Annotated[str, BeforeValidator(_repo)]
Lcmu = Annotated[bool | None, BeforeValidator(_lcmu, json_schema_input_type=bool | Literal["omit"])]
DeviceMap = Annotated[
    str | None,
    BeforeValidator(
        _device_map, json_schema_input_type=Literal["none", "cpu", "auto", "cuda"] | None
    ),
]


def values(item: Any, *, list_only: bool = False) -> Any:  # noqa: ANN401 - a type
    """A scalar (unless `list_only`) or a non-empty list of distinct `item`s, as a tuple."""
    given = list[item] if list_only else item | list[item]
    wrap = WrapValidator(_distinct, json_schema_input_type=given)
    if list_only:
        return Annotated[tuple[item, ...], wrap, BeforeValidator(_a_list)]
    return Annotated[tuple[item, ...], wrap]


AList = BeforeValidator(_a_list)
