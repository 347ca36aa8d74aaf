"""Field types of the config models: pydantic `Annotated` types with one-line messages.

YAML types matter (``torch: 2.5`` is a float, ``3.10`` is 3.1), so every validator is strict
about the Python type the scalar became and says what it got. A problem is a
`PydanticCustomError` of type ``harness``; its context may name `at`, a key or index below
the field, and `key`, whether the line is the key's.
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
    """`problem` at the field, or at its key or item `at`; with `shown`, the message goes on
    "<sep><shown as the YAML wrote it><then>" (see `got`)."""
    ctx: dict[str, Any] = {"problem": problem, "at": at, "key": key}
    if shown is not _NOTHING:
        ctx.update(shown=shown, then=then, sep=sep)
    return PydanticCustomError("harness", "{problem}", ctx)


def got(value: object, raw: str | None = None) -> str:
    """A YAML value as a message shows it: its text (`raw`: as written) and YAML type."""
    if isinstance(value, dict | list | tuple | str) or value is None:
        kinds = {dict: "a mapping", list: "a list", tuple: "a list", type(None): "nothing (null)"}
        return kinds.get(type(value), repr(value))
    kind = next((k for t, k in _KINDS if isinstance(value, t)), None)
    if kind is None:
        return repr(value)
    return f"{raw or (str(value).lower() if isinstance(value, bool) else value)} (a YAML {kind})"


_KINDS = ((bool, "boolean"), (int, "integer"), (float, "float"), (dt.date, "timestamp"))


def no_control(what: str, value: str) -> str:
    """`value`, unless it holds a control, format or unassigned character (category C*)."""
    for char in value:
        if unicodedata.category(char).startswith("C"):
            problem = f"invalid {what} {value!r}: contains the control character U+{ord(char):04X}"
            raise fail(problem)
    return value


def text(what: str = "a string") -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str):
            quote = "; quote it" if value is not None and not isinstance(value, dict | list) else ""
            raise fail(f"expected {what}", shown=value, then=quote)
        if not value.strip():
            raise fail(f"expected {what}, got an empty string")
        return value

    return check


def _matching(what: str, pattern: re.Pattern[str], problem: str) -> Callable[[object], str]:
    """A non-empty string that `pattern` matches; else `problem` (``{v}``: the value)."""

    def check(value: object) -> str:
        value = text(what)(value)
        if not pattern.fullmatch(value):
            raise fail(problem.format(v=repr(value)))
        return value

    return check


def _number(
    expected: str, kind: type, *bounds: tuple[Callable[[float], bool], str]
) -> Callable[[object], Any]:
    """An int (or float) of YAML type `kind`; each bound (test, problem) fails in turn."""

    def check(value: object) -> Any:  # noqa: ANN401
        if not isinstance(value, kind) or isinstance(value, bool):
            raise fail(f"expected {expected}", shown=value)
        for ok, problem in bounds:
            if not ok(value):  # type: ignore[arg-type]
                raise fail(f"{problem}, got {value}")
        return value if kind is int else float(value)  # type: ignore[arg-type]

    return check


_POSITIVE = (lambda v: math.isfinite(v) and v > 0, "must be positive and finite")


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise fail("expected true or false", shown=value)
    return value


def choice(choices: Sequence[str]) -> Callable[[object], str]:
    expected = f"one of {', '.join(choices)}"
    pattern = re.compile("|".join(map(re.escape, choices)))
    return _matching(expected, pattern, f"expected {expected}, got {{v}}")


def version(example: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        value = text(f'a version string like "{example}"')(value)
        if value[:1] in "<>=!~^*" or "," in value:
            raise fail(f'expected an exact version like "{example}", got the specifier {value!r}')
        try:
            Version(value)
        except InvalidVersion:
            problem = f'invalid version {value!r}; expected an exact version like "{example}"'
            raise fail(problem) from None
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


def identifier(value: object, what: str = "id") -> str:
    problem = f"invalid {what} {{v}}: use letters, digits and . _ + - (no / or spaces)"
    return _matching(f"an {what}" if what[0] in "aeiou" else f"a {what}", ID_RE, problem)(value)


def _prompt(value: object) -> str:
    value = text()(value)
    if "\0" in value:
        raise fail(f"invalid prompt {value!r}: contains a NUL character")
    return value


def _lcmu(value: object) -> bool | None:
    if isinstance(value, bool) or value == "omit":
        return None if value == "omit" else bool(value)
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


def _str(check: Callable[..., str]) -> Any:  # noqa: ANN401 - a type
    return Annotated[str, BeforeValidator(check)]


Text = _str(text())
Label = _str(lambda v: no_control("label", text()(v)))
Prompt = _str(_prompt)
PositiveInt = Annotated[int, BeforeValidator(_number("a positive integer", int, (lambda v: v >= 1, "must be positive"))), Field(json_schema_extra={"minimum": 1})]  # fmt: skip  # noqa: E501
PositiveNumber = Annotated[float, BeforeValidator(_number("a positive number", float | int, _POSITIVE)), Field(json_schema_extra={"exclusiveMinimum": 0})]  # fmt: skip  # noqa: E501
Fraction = Annotated[float, BeforeValidator(_number("a positive number", float | int, _POSITIVE, (lambda v: v < 1, "expected a number between 0 and 1"))), Field(json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 1})]  # fmt: skip  # noqa: E501
NonNegative = Annotated[float, BeforeValidator(_number("a number >= 0", float | int, (lambda v: math.isfinite(v) and v >= 0, "must be >= 0 and finite"))), Field(json_schema_extra={"minimum": 0})]  # fmt: skip  # noqa: E501
Bool = Annotated[bool, BeforeValidator(_boolean)]
Id = Annotated[str, BeforeValidator(identifier), Field(pattern=f"^{ID_RE.pattern}$")]
Requirement_ = _str(_requirement)
FindLink = _str(_find_link)
Url = _str(_matching("a URL", URL_RE, "expected a URL like https://host/simple, got {v}"))
TorchBackend = _str(_matching('a uv torch backend like "cpu" or "cu124"', TORCH_BACKEND_RE, "expected auto, cpu, xpu, cuXYZ or rocmX.Y, got {v}"))  # fmt: skip  # noqa: E501
Repo = _str(_matching('a Hub repo id like "gpt2" or "org/name"', REPO_RE, "invalid Hub repo id {v}"))  # fmt: skip  # noqa: E501
Lcmu = Annotated[bool | None, BeforeValidator(_lcmu, json_schema_input_type=bool | Literal["omit"])]
DeviceMap = Annotated[str | None, BeforeValidator(_device_map, json_schema_input_type=Literal["none", "cpu", "auto", "cuda"] | None)]  # fmt: skip  # noqa: E501
AList = BeforeValidator(_a_list)


def values(item: Any, *, list_only: bool = False) -> Any:  # noqa: ANN401 - a type
    """A scalar (unless `list_only`) or a non-empty list of distinct `item`s, as a tuple."""
    wrap = WrapValidator(_distinct, json_schema_input_type=list[item] if list_only else item | list[item])  # fmt: skip  # noqa: E501
    if list_only:
        return Annotated[tuple[item, ...], wrap, AList]
    return Annotated[tuple[item, ...], wrap]
