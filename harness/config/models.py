"""The pydantic models of matrix.yaml: shape, types and every rule within one entry.

Rules that cross entries (ids named elsewhere, profiles that select nothing) are checks.py's.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.config import fields as f
from harness.config import ids
from harness.config.entry import Entry, InstallKeys, choice, exact_version, python_key, ref, under
from harness.config.sweeps import SweepEntry  # noqa: TC001 - pydantic needs it at runtime

if TYPE_CHECKING:
    from collections.abc import Mapping

from harness.metrics import FAIL_ON_CHOICES

# Models of other families (harness/fixtures/families.py), safetensors only.
FAMILY_PRESETS = ("tiny-llama", "tiny-qwen2", "tiny-neox", "tiny-t5", "llama-240m")
PRESETS = ("gpt2-124m", "gpt2-355m", "gpt2-774m", "gpt2-1.5b", *FAMILY_PRESETS)
EMBEDDED = ("tiny-gpt2",)
SOURCES = ("embedded", "preset", "local", "hub")
MODES = ("forkserver", "fresh")
CLUSTERS = ("slurm", "local")  # submitit executors: `local` runs the jobs as processes here
DTYPES = tuple(ids.DTYPE_SHORT)
CHECKPOINT_FORMATS = tuple(ids.FORMAT_SHORT)
PROFILES_REQUIRED = ("smoke", "default", "full")
MIN_REPEATS = 3  # compare.min_repeats: the least a verdict may rest on
# The first four must all be given by an include rule; the later ones default (ids.LATER_AXES).
AXES = ("low_cpu_mem_usage", "device_map", "dtype", "checkpoint_format", *ids.LATER_AXES)
REQUIRED_AXES = AXES[:4]
ATTN_IMPLEMENTATIONS = ids.LATER_AXES["attn_implementation"][1]
QUANTIZATIONS = ids.LATER_AXES["quantization"][1]
OFFLOADS = ids.LATER_AXES["offload"][1]
# Logit margins (top-1 minus top-2) below which a first differing token is float noise.
DEFAULT_GOLDEN_TOLERANCE: Mapping[str, float] = MappingProxyType(
    {"float32": 0.01, "bfloat16": 0.5, "float16": 0.1}
)

_INSTALL_ONLY = ("transformers", "torch", "accelerate", "pins", "find_links", "index_url", "torch_backend")  # fmt: skip  # noqa: E501
_SOURCE_KEYS = {
    "embedded": ("source", "prompts", "fixture"),
    "preset": ("source", "prompts", "preset", "shards"),
    "local": ("source", "prompts", "path", "trust_remote_code", "allow_unsafe_pickle"),
    "hub": ("source", "prompts", "repo", "revision", "trust_remote_code", "allow_unsafe_pickle"),
}


class GoldenTolerance(Entry):
    float32: f.PositiveNumber = DEFAULT_GOLDEN_TOLERANCE["float32"]
    bfloat16: f.PositiveNumber = DEFAULT_GOLDEN_TOLERANCE["bfloat16"]
    float16: f.PositiveNumber = DEFAULT_GOLDEN_TOLERANCE["float16"]


class SettingsEntry(Entry):
    repeats: f.PositiveInt | None = None
    timeout_s: f.PositiveNumber | None = None
    mode: choice(MODES) | None = None  # type: ignore[valid-type]
    max_new_tokens: f.PositiveInt | None = None
    golden_tolerance: GoldenTolerance | None = None
    threads: f.PositiveInt | None = None
    interop_threads: f.PositiveInt | None = None


class CompareEntry(Entry):
    memory: f.PositiveNumber | None = None
    time: f.PositiveNumber | None = None
    alpha: f.Fraction | None = None
    min_repeats: f.PositiveInt | None = None
    memory_floor_mb: f.NonNegative | None = None
    memory_floor_share: f.NonNegative | None = None
    min_weights_mb: f.NonNegative | None = None
    fail_on: f.values(choice(FAIL_ON_CHOICES)) | None = None  # type: ignore[valid-type]

    @field_validator("min_repeats")
    @classmethod
    def _enough(cls, value: int | None) -> int | None:
        if value is not None and value < MIN_REPEATS:
            # Below 3 a single pair of lucky repeats decides; see harness/decide/stats.py.
            raise f.fail(f"must be at least {MIN_REPEATS}, got {value}")
        return value

    @field_validator("fail_on", mode="wrap")
    @classmethod
    def _empty(cls, value: object, handler: Any) -> Any:  # noqa: ANN401
        return () if value == [] else handler(value)  # empty: compare reports, never fails


class CIEntry(Entry):
    cpu_runner: f.values(f.Label) = ()  # type: ignore[valid-type]
    gpu_runner: f.values(f.Label) = ()  # type: ignore[valid-type]


class LaunchEntry(Entry):
    """`harness bench --launcher slurm`: one submitit job per shard (cluster local: same jobs,
    as processes on this machine)."""

    cluster: choice(CLUSTERS) = "slurm"  # type: ignore[valid-type]
    partition: f.Label | None = None
    gpus_per_node: f.PositiveInt | None = None
    cpus_per_task: f.PositiveInt | None = None
    timeout_min: f.PositiveInt = 120
    shards: f.PositiveInt = 1


class _StackKeys(Entry):
    id: f.Id | None = None
    install: f.Bool | None = None
    python: Annotated[Any, Field(json_schema_extra={"type": "string"})]
    transformers: exact_version("4.46.3") | None = None  # type: ignore[valid-type]
    torch: exact_version("2.5.1") | None = None  # type: ignore[valid-type]


class StackEntry(InstallKeys, _StackKeys):
    @model_validator(mode="after")
    def _by_kind(self, info: ValidationInfo) -> StackEntry:
        if self.install is False:
            return self._existing(info)
        for key, example in (("transformers", "4.46.3"), ("torch", "2.5.1")):
            if getattr(self, key) is None and key in self.model_fields_set:
                raise f.fail(f'expected a version string like "{example}"', key, shown=None)
            if getattr(self, key) is None:
                raise f.fail(f"missing required key {key!r}")
        python_key(self.python)
        return self

    @field_validator("pins", mode="wrap")
    @classmethod
    def _no_conflict(cls, value: object, handler: Any, info: ValidationInfo) -> Any:  # noqa: ANN401
        pins = handler(value)
        accelerate = info.data.get("accelerate")
        for i, pin in enumerate(pins):
            name = f.requirement_name(pin)
            if name in ("torch", "transformers") or (name == "accelerate" and accelerate):
                at = i if isinstance(value, list) else None
                raise f.fail(f"{pin!r} conflicts with the stack's own {name!r} key", at)
        return pins

    def _existing(self, info: ValidationInfo) -> StackEntry:
        for key in _INSTALL_ONLY:
            if key in self.model_fields_set:
                problem = "an existing environment (install: false) installs nothing"
                raise f.fail(problem, key, key=True)
        if self.id is None:
            raise f.fail("an existing environment (install: false) needs an id", "id")
        value = under("python", lambda: f.no_control("interpreter path", f.text("the path of an interpreter")(self.python)))  # fmt: skip  # noqa: E501
        try:
            python = Path(value).expanduser()
            if not python.is_absolute():
                # normpath, not resolve(): a venv's bin/python is a symlink to the base
                # interpreter, and following it would leave the environment behind.
                base = Path((info.context or {}).get("base", "."))
                python = Path(os.path.normpath(base / python))
        except (RuntimeError, ValueError) as exc:  # ~unknown-user
            raise f.fail(f"invalid interpreter path {value!r}: {exc}", "python") from None
        self.python = str(python)
        return self


class ModelEntry(Entry):
    source: choice(SOURCES)  # type: ignore[valid-type]
    prompts: Annotated[tuple[f.Prompt, ...], f.AList]
    fixture: f.Text | None = None
    preset: f.Text | None = None
    path: Annotated[str, BeforeValidator(f.text("a folder path"))] | None = None
    repo: f.Repo | None = None
    revision: f.Label | None = None
    trust_remote_code: f.Bool | None = None
    shards: f.PositiveInt | None = None  # preset: written as this many checkpoint files
    # .bin on a torch without torch.load(weights_only=True): runs only when declared.
    allow_unsafe_pickle: f.Bool | None = None

    @model_validator(mode="after")
    def _by_source(self, info: ValidationInfo) -> ModelEntry:
        allowed = _SOURCE_KEYS[self.source]
        for key in self.model_fields_set:
            if key not in allowed:
                problem = f"not allowed for source {self.source!r} (allowed: {', '.join(allowed)})"
                raise f.fail(problem, key, key=True)
        if not self.prompts:
            raise f.fail("must list at least one prompt", "prompts")
        field = {"local": "path", "hub": "repo"}.get(self.source)
        if field is not None and getattr(self, field) is None:
            raise f.fail(f"source {self.source!r} needs the key {field!r}")
        if self.path is not None:
            self.path = under("path", lambda: f.folder(str(self.path), info))
        return self

    def location(self, name: str) -> str:
        if self.source == "embedded":
            return self.fixture or name
        if self.source == "preset":
            return self.preset or name
        return str(self.path if self.source == "local" else self.repo)


def _named(invalid: str, empty: str = "", required: tuple[str, ...] = ()) -> BeforeValidator:
    """A mapping whose keys are ids (else `invalid`, ``{n}``: the key), not empty, with
    the `required` keys."""

    def check(value: object) -> object:
        if not isinstance(value, dict):
            raise f.fail("expected a mapping", shown=value)
        if empty and not value:
            raise f.fail(empty)
        for name in value:
            if not f.ID_RE.fullmatch(name):
                raise f.fail(invalid.format(n=repr(name)), name, key=True)
        for name in required:
            if name not in value:
                raise f.fail(f"missing required profile {name!r}")
        return value

    return BeforeValidator(check)


_MODEL_IDS = _named(
    "invalid model id {n}: use letters, digits and . _ + - (no / or spaces)",
    "must define at least one model",
)
_PROFILE_NAMES = _named("invalid profile name {n}", required=PROFILES_REQUIRED)


class _AxisKeys(Entry):
    low_cpu_mem_usage: f.values(f.Lcmu) = ()  # type: ignore[valid-type]
    device_map: f.values(f.DeviceMap) = ()  # type: ignore[valid-type]
    dtype: f.values(choice(DTYPES)) = ()  # type: ignore[valid-type]
    checkpoint_format: f.values(choice(CHECKPOINT_FORMATS)) = ()  # type: ignore[valid-type]
    batch: f.values(f.PositiveInt) = ()  # type: ignore[valid-type]
    attn_implementation: f.values(choice(ATTN_IMPLEMENTATIONS)) = ()  # type: ignore[valid-type]
    quantization: f.values(choice(QUANTIZATIONS)) = ()  # type: ignore[valid-type]
    offload: f.values(choice(OFFLOADS)) = ()  # type: ignore[valid-type]


class AxesEntry(_AxisKeys):
    max_new_tokens: f.PositiveInt | None = None


class _RuleKeys(Entry):
    stack: f.values(ref("stack")) = ()  # type: ignore[valid-type]
    model: f.values(ref("model")) = ()  # type: ignore[valid-type]


class RuleEntry(_AxisKeys, _RuleKeys):  # pydantic orders fields from the last base: stack first
    @model_validator(mode="after")
    def _not_empty(self) -> RuleEntry:
        if not self.model_fields_set:
            keys = ", ".join(type(self).model_fields)
            raise f.fail(f"an empty rule matches every cell; give some of: {keys}")
        return self


class IncludeEntry(RuleEntry):
    @model_validator(mode="after")
    def _complete(self) -> IncludeEntry:
        missing = [key for key in ("model", *REQUIRED_AXES) if key not in self.model_fields_set]
        if missing and self.model_fields_set:
            problem = "an include rule needs model and the first four scenario axes"
            raise f.fail(f"{problem} (missing: {', '.join(missing)})")
        return self


Includes = Annotated[tuple[IncludeEntry, ...], f.AList]
Excludes = Annotated[tuple[RuleEntry, ...], f.AList]


class ProfileEntry(Entry):
    models: f.values(ref("model"), list_only=True) = ()  # type: ignore[valid-type]
    stacks: f.values(ref("stack"), list_only=True) = ()  # type: ignore[valid-type]
    scenarios: AxesEntry | None = None
    repeats: f.PositiveInt | None = None
    include: Includes | None = None
    exclude: Excludes | None = None


class MatrixDocument(Entry):
    """matrix.yaml: the validation matrix of stacks, models and loading scenarios."""

    model_config = ConfigDict(title="matrix.yaml")

    settings: SettingsEntry | None = None
    stacks: Annotated[tuple[StackEntry, ...], f.AList] = ()
    sweeps: Annotated[tuple[SweepEntry, ...], f.AList] = ()
    models: Annotated[dict[str, ModelEntry], _MODEL_IDS, Field(json_schema_extra={"minProperties": 1})]  # fmt: skip  # noqa: E501
    scenarios: AxesEntry | None = None
    exclude: Excludes | None = None
    include: Includes | None = None
    profiles: Annotated[dict[str, ProfileEntry | None], _PROFILE_NAMES]
    compare: CompareEntry | None = None
    ci: CIEntry | None = None
    launch: LaunchEntry | None = None

    @model_validator(mode="after")
    def _some_stacks(self) -> MatrixDocument:
        if not self.stacks and not self.sweeps:
            at = "stacks" if "stacks" in self.model_fields_set else None
            raise f.fail("must list at least one stack or sweep", at)
        return self

    @model_validator(mode="after")
    def _locations(self) -> MatrixDocument:
        for name, model in self.models.items():
            if model.source not in ("embedded", "preset"):
                continue
            field, known = ("fixture", EMBEDDED) if model.source == "embedded" else ("preset", PRESETS)  # fmt: skip  # noqa: E501
            value = model.location(name)
            if (model.shards or 1) > 1 and value in FAMILY_PRESETS:
                problem = f"only the GPT-2 presets can be sharded, not {value!r}"
                raise f.fail(problem, ("models", name, "shards"), key=True)
            if value not in known:
                label = "embedded fixture" if model.source == "embedded" else "preset"
                at = ("models", name, field) if getattr(model, field) else ("models", name)
                raise f.fail(f.unknown(label, value, known), at, key=len(at) == 2)
        return self
