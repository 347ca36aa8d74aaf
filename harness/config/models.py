"""The pydantic models of matrix.yaml: shape, types and every rule within one entry.

They validate the plain data of harness/config/source.py; harness/config/loader.py builds
the frozen dataclasses of harness/config/domain.py from them, and harness/config/checks.py
applies the rules that cross entries (ids named elsewhere, profiles that select nothing).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from harness.config import ids

if TYPE_CHECKING:
    from collections.abc import Mapping

from harness.config.fields import (
    ID_RE,
    AList,
    Bool,
    DeviceMap,
    FindLink,
    Fraction,
    Id,
    Label,
    Lcmu,
    NonNegative,
    PositiveInt,
    PositiveNumber,
    Prompt,
    Repo,
    Requirement_,
    Text,
    TorchBackend,
    Url,
    choice,
    fail,
    folder,
    no_control,
    python_version,
    requirement_name,
    text,
    unknown,
    values,
    version,
)
from harness.metrics import FAIL_ON_CHOICES

PRESETS = ("gpt2-124m", "gpt2-355m", "gpt2-774m", "gpt2-1.5b")
EMBEDDED = ("tiny-gpt2",)
SOURCES = ("embedded", "preset", "local", "hub")
MODES = ("forkserver", "fresh")
DTYPES = tuple(ids.DTYPE_SHORT)
CHECKPOINT_FORMATS = tuple(ids.FORMAT_SHORT)
PROFILES_REQUIRED = ("smoke", "default", "full")
AXES = ("low_cpu_mem_usage", "device_map", "dtype", "checkpoint_format")
# Logit margins (top-1 minus top-2) below which a first differing token is float noise.
DEFAULT_GOLDEN_TOLERANCE: Mapping[str, float] = MappingProxyType(
    {"float32": 0.01, "bfloat16": 0.5, "float16": 0.1}
)

_INSTALL_ONLY = ("transformers", "torch", "accelerate", "pins", "find_links", "index_url", "torch_backend")  # fmt: skip  # noqa: E501
_SOURCE_KEYS = {
    "embedded": ("source", "prompts", "fixture"),
    "preset": ("source", "prompts", "preset"),
    "local": ("source", "prompts", "path", "trust_remote_code"),
    "hub": ("source", "prompts", "repo", "revision", "trust_remote_code"),
}


def _at(exc: PydanticCustomError, at: str) -> PydanticCustomError:
    """A field's error raised by its entry's validator: moved down to the field."""
    return PydanticCustomError("harness", "{problem}", {**(exc.context or {}), "at": at})


class Entry(BaseModel):
    """A mapping of known keys: an unknown one fails, with a "did you mean" hint."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: object) -> object:
        if not isinstance(data, dict):
            raise fail("expected a mapping", shown=data)
        allowed = list(cls.model_fields)
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problem = f"unknown key {key!r} ({hint}allowed: {', '.join(allowed)})"
                raise fail(problem, key, key=True)
        return data


def _choice(choices: tuple[str, ...]) -> Any:  # noqa: ANN401 - a type
    return Annotated[str, BeforeValidator(choice(choices)), Field(json_schema_extra={"enum": list(choices)})]  # fmt: skip  # noqa: E501


def _ref(what: str) -> Any:  # noqa: ANN401 - a type
    return Annotated[str, BeforeValidator(text(f"a {what} id"))]


def _version(example: str) -> Any:  # noqa: ANN401 - a type
    return Annotated[str, BeforeValidator(version(example))]


# --------------------------------------------------------------------------- settings


class GoldenTolerance(Entry):
    float32: PositiveNumber = DEFAULT_GOLDEN_TOLERANCE["float32"]
    bfloat16: PositiveNumber = DEFAULT_GOLDEN_TOLERANCE["bfloat16"]
    float16: PositiveNumber = DEFAULT_GOLDEN_TOLERANCE["float16"]


class SettingsEntry(Entry):
    repeats: PositiveInt | None = None
    timeout_s: PositiveNumber | None = None
    mode: _choice(MODES) | None = None  # type: ignore[valid-type]
    max_new_tokens: PositiveInt | None = None
    golden_tolerance: GoldenTolerance | None = None


def _fail_on(value: object, handler: Any) -> Any:  # noqa: ANN401
    return () if value == [] else handler(value)  # empty: compare reports, never fails


class CompareEntry(Entry):
    memory: PositiveNumber | None = None
    time: PositiveNumber | None = None
    alpha: Fraction | None = None
    min_repeats: PositiveInt | None = None
    memory_floor_mb: NonNegative | None = None
    fail_on: values(_choice(FAIL_ON_CHOICES)) | None = None  # type: ignore[valid-type]

    @field_validator("fail_on", mode="wrap")
    @classmethod
    def _empty(cls, value: object, handler: Any) -> Any:  # noqa: ANN401
        return _fail_on(value, handler)


class CIEntry(Entry):
    cpu_runner: values(Label) = ()  # type: ignore[valid-type]
    gpu_runner: values(Label) = ()  # type: ignore[valid-type]


# --------------------------------------------------------------------------- stacks


class StackEntry(Entry):
    id: Id | None = None
    install: Bool | None = None
    python: Annotated[Any, Field(json_schema_extra={"type": "string"})]
    transformers: _version("4.46.3") | None = None  # type: ignore[valid-type]
    torch: _version("2.5.1") | None = None  # type: ignore[valid-type]
    accelerate: _version("1.1.1") | None = None  # type: ignore[valid-type]
    pins: values(Requirement_) = ()  # type: ignore[valid-type]
    find_links: values(FindLink) = ()  # type: ignore[valid-type]
    index_url: Url | None = None
    torch_backend: TorchBackend | None = None

    @model_validator(mode="after")
    def _by_kind(self, info: ValidationInfo) -> StackEntry:
        if self.install is False:
            return self._existing(info)
        for key, example in (("transformers", "4.46.3"), ("torch", "2.5.1")):
            if getattr(self, key) is None and key in self.model_fields_set:
                raise fail(f'expected a version string like "{example}"', key, shown=None)
            if getattr(self, key) is None:
                raise fail(f"missing required key {key!r}")
        try:
            python_version(text('a Python version string like "3.11"')(self.python))
        except PydanticCustomError as exc:
            raise _at(exc, "python") from None
        return self

    @field_validator("pins", mode="wrap")
    @classmethod
    def _no_conflict(cls, value: object, handler: Any, info: ValidationInfo) -> Any:  # noqa: ANN401
        pins = handler(value)
        accelerate = info.data.get("accelerate")
        for i, pin in enumerate(pins):
            name = requirement_name(pin)
            if name in ("torch", "transformers") or (name == "accelerate" and accelerate):
                at = i if isinstance(value, list) else None
                raise fail(f"{pin!r} conflicts with the stack's own {name!r} key", at)
        return pins

    def _existing(self, info: ValidationInfo) -> StackEntry:
        for key in _INSTALL_ONLY:
            if key in self.model_fields_set:
                problem = "an existing environment (install: false) installs nothing"
                raise fail(problem, key, key=True)
        if self.id is None:
            raise fail("an existing environment (install: false) needs an id", "id")
        try:
            value = text("the path of an interpreter")(self.python)
        except PydanticCustomError as exc:
            raise _at(exc, "python") from None
        try:
            no_control("interpreter path", value)
            python = Path(value).expanduser()
            if not python.is_absolute():
                # normpath, not resolve(): a venv's bin/python is a symlink to the base
                # interpreter, and following it would leave the environment behind.
                base = Path((info.context or {}).get("base", "."))
                python = Path(os.path.normpath(base / python))
        except PydanticCustomError as exc:
            raise _at(exc, "python") from None
        except (RuntimeError, ValueError) as exc:  # ~unknown-user
            raise fail(f"invalid interpreter path {value!r}: {exc}", "python") from None
        self.python = str(python)
        return self


# --------------------------------------------------------------------------- models


class ModelEntry(Entry):
    source: _choice(SOURCES)  # type: ignore[valid-type]
    prompts: Annotated[tuple[Prompt, ...], AList]
    fixture: Text | None = None
    preset: Text | None = None
    path: Annotated[str, BeforeValidator(text("a folder path"))] | None = None
    repo: Repo | None = None
    revision: Label | None = None
    trust_remote_code: Bool | None = None

    @model_validator(mode="after")
    def _by_source(self, info: ValidationInfo) -> ModelEntry:
        allowed = _SOURCE_KEYS[self.source]
        for key in self.model_fields_set:
            if key not in allowed:
                problem = f"not allowed for source {self.source!r} (allowed: {', '.join(allowed)})"
                raise fail(problem, key, key=True)
        if not self.prompts:
            raise fail("must list at least one prompt", "prompts")
        field = {"local": "path", "hub": "repo"}.get(self.source)
        if field is not None and getattr(self, field) is None:
            raise fail(f"source {self.source!r} needs the key {field!r}")
        if self.path is not None:
            try:
                self.path = folder(self.path, info)
            except PydanticCustomError as exc:
                raise _at(exc, "path") from None
        return self

    def location(self, name: str) -> str:
        if self.source == "embedded":
            return self.fixture or name
        if self.source == "preset":
            return self.preset or name
        return str(self.path if self.source == "local" else self.repo)


def _models(value: object) -> object:
    if not isinstance(value, dict):
        raise fail("expected a mapping", shown=value)
    if not value:
        raise fail("must define at least one model")
    for name in value:
        if not ID_RE.fullmatch(name):
            problem = f"invalid model id {name!r}: use letters, digits and . _ + - (no / or spaces)"
            raise fail(problem, name, key=True)
    return value


# --------------------------------------------------------------------------- axes, rules


class AxesEntry(Entry):
    low_cpu_mem_usage: values(Lcmu) = ()  # type: ignore[valid-type]
    device_map: values(DeviceMap) = ()  # type: ignore[valid-type]
    dtype: values(_choice(DTYPES)) = ()  # type: ignore[valid-type]
    checkpoint_format: values(_choice(CHECKPOINT_FORMATS)) = ()  # type: ignore[valid-type]
    max_new_tokens: PositiveInt | None = None


class RuleEntry(Entry):
    stack: values(_ref("stack")) = ()  # type: ignore[valid-type]
    model: values(_ref("model")) = ()  # type: ignore[valid-type]
    low_cpu_mem_usage: values(Lcmu) = ()  # type: ignore[valid-type]
    device_map: values(DeviceMap) = ()  # type: ignore[valid-type]
    dtype: values(_choice(DTYPES)) = ()  # type: ignore[valid-type]
    checkpoint_format: values(_choice(CHECKPOINT_FORMATS)) = ()  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _not_empty(self) -> RuleEntry:
        if not self.model_fields_set:
            keys = ", ".join(type(self).model_fields)
            raise fail(f"an empty rule matches every cell; give some of: {keys}")
        return self


class IncludeEntry(RuleEntry):
    @model_validator(mode="after")
    def _complete(self) -> IncludeEntry:
        missing = [key for key in ("model", *AXES) if key not in self.model_fields_set]
        if missing and self.model_fields_set:
            problem = "an include rule needs model and every scenario axis"
            raise fail(f"{problem} (missing: {', '.join(missing)})")
        return self


Includes = Annotated[tuple[IncludeEntry, ...], AList]
Excludes = Annotated[tuple[RuleEntry, ...], AList]


# --------------------------------------------------------------------------- profiles


class ProfileEntry(Entry):
    models: values(_ref("model"), list_only=True) = ()  # type: ignore[valid-type]
    stacks: values(_ref("stack"), list_only=True) = ()  # type: ignore[valid-type]
    scenarios: AxesEntry | None = None
    repeats: PositiveInt | None = None
    include: Includes | None = None
    exclude: Excludes | None = None


def _profiles(value: object) -> object:
    if not isinstance(value, dict):
        raise fail("expected a mapping", shown=value)
    for name in value:
        if not ID_RE.fullmatch(name):
            raise fail(f"invalid profile name {name!r}", name, key=True)
    for name in PROFILES_REQUIRED:
        if name not in value:
            raise fail(f"missing required profile {name!r}")
    return value


# --------------------------------------------------------------------------- the document


class MatrixDocument(Entry):
    """matrix.yaml: the validation matrix of stacks, models and loading scenarios."""

    model_config = ConfigDict(title="matrix.yaml")

    settings: SettingsEntry | None = None
    stacks: Annotated[tuple[StackEntry, ...], AList, Field(json_schema_extra={"minItems": 1})]
    models: Annotated[
        dict[str, ModelEntry],
        BeforeValidator(_models),
        Field(json_schema_extra={"minProperties": 1}),
    ]
    scenarios: AxesEntry | None = None
    exclude: Excludes | None = None
    include: Includes | None = None
    profiles: Annotated[dict[str, ProfileEntry | None], BeforeValidator(_profiles)]
    compare: CompareEntry | None = None
    ci: CIEntry | None = None

    @field_validator("stacks", mode="before")
    @classmethod
    def _some_stacks(cls, value: object) -> object:
        if value == []:
            raise fail("must list at least one stack")
        return value

    @model_validator(mode="after")
    def _locations(self) -> MatrixDocument:
        for name, model in self.models.items():
            if model.source not in ("embedded", "preset"):
                continue
            field, known = ("fixture", EMBEDDED) if model.source == "embedded" else ("preset", PRESETS)  # fmt: skip  # noqa: E501
            value = model.location(name)
            if value not in known:
                label = "embedded fixture" if model.source == "embedded" else "preset"
                at = ("models", name, field) if getattr(model, field) else ("models", name)
                raise fail(unknown(label, value, known), at, key=len(at) == 2)
        return self
