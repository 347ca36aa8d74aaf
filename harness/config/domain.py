"""The data model of matrix.yaml: frozen dataclasses, built by harness/config/loader.py.

`Matrix.cells()` expands a profile into cells: stack x model x scenario, less `exclude`,
plus `include`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harness.config import ids

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from pathlib import Path

PRESETS = ("gpt2-124m", "gpt2-355m", "gpt2-774m", "gpt2-1.5b")
EMBEDDED = ("tiny-gpt2",)
SOURCES = ("embedded", "preset", "local", "hub")
MODES = ("forkserver", "fresh")
DEVICE_MAPS = ("cpu", "auto", "cuda")  # plus None: the keyword is not passed
DTYPES = ("float32", "bfloat16", "float16")
CHECKPOINT_FORMATS = ("safetensors", "bin")
PROFILES_REQUIRED = ("smoke", "default", "full")

AXES = ("low_cpu_mem_usage", "device_map", "dtype", "checkpoint_format")

# Logit margins (top-1 minus top-2) below which a first differing token is float noise.
DEFAULT_GOLDEN_TOLERANCE: Mapping[str, float] = MappingProxyType(
    {"float32": 0.01, "bfloat16": 0.5, "float16": 0.1}
)
AxisValue = bool | str | None


class MatrixError(Exception):
    """A problem with the matrix file or a lookup in it; str() is a single line."""


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Stack:
    id: str
    python: str
    transformers: str
    torch: str
    accelerate: str | None = None
    pins: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    torch_backend: str | None = None
    # False: an existing environment; `python` is its interpreter, nothing is installed and
    # the versions are read from it.
    install: bool = True

    def requirements(self) -> tuple[str, ...]:
        """What to install: core pins, accelerate (bare when unpinned), extra pins."""
        reqs = [f"torch=={self.torch}", f"transformers=={self.transformers}"]
        if self.accelerate is not None:
            reqs.append(f"accelerate=={self.accelerate}")
        elif not any(requirement_name(pin) == "accelerate" for pin in self.pins):
            reqs.append("accelerate")  # unpinned: the resolver picks one that fits
        return (*reqs, *self.pins)


@dataclass(frozen=True)
class Model:
    id: str
    source: str
    location: str
    prompts: tuple[str, ...]
    revision: str | None = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class Scenario:
    low_cpu_mem_usage: bool | None
    device_map: str | None
    dtype: str
    checkpoint_format: str
    max_new_tokens: int

    @property
    def id(self) -> str:
        return ids.scenario_id(
            self.low_cpu_mem_usage, self.device_map, self.dtype, self.checkpoint_format
        )


@dataclass(frozen=True)
class Cell:
    stack: Stack
    model: Model
    scenario: Scenario

    @property
    def id(self) -> str:
        """Unique within one stack; the stack id is kept apart (it names the environment)."""
        return ids.cell_id(self.model.id, self.scenario.id)


@dataclass(frozen=True)
class Settings:
    repeats: int = 3
    timeout_s: float = 600.0
    mode: str = "forkserver"
    max_new_tokens: int = 20
    golden_tolerance: Mapping[str, float] = field(default_factory=lambda: DEFAULT_GOLDEN_TOLERANCE)


@dataclass(frozen=True)
class CompareSettings:
    """Thresholds for `nox -s compare`: relative changes, the test level, the CI policy."""

    memory: float = 0.05  # a memory metric must move by 5% to count
    time: float = 0.10  # load, first-token and decode times: 10%
    alpha: float = 0.05  # 95% confidence intervals; Mann-Whitney U at this level
    min_repeats: int = 3  # fewer repeats on either side: `uncertain`
    memory_floor_mb: float = 1.0  # smaller absolute moves are page and allocator noise
    fail_on: tuple[str, ...] = ("memory", "status", "golden")


@dataclass(frozen=True)
class CISettings:
    """Runner labels for the workflow `nox -s ci-workflow` writes."""

    cpu_runner: tuple[str, ...] = ("ubuntu-latest",)
    gpu_runner: tuple[str, ...] = ("self-hosted", "gpu")


@dataclass(frozen=True)
class Axes:
    """Scenario axes; an empty tuple (or None for max_new_tokens) means "not given here"."""

    low_cpu_mem_usage: tuple[bool | None, ...] = ()
    device_map: tuple[str | None, ...] = ()
    dtype: tuple[str, ...] = ()
    checkpoint_format: tuple[str, ...] = ()
    max_new_tokens: int | None = None

    def overlay(self, other: Axes) -> Axes:
        """These axes with every axis that `other` gives replaced by other's values."""
        return Axes(
            low_cpu_mem_usage=other.low_cpu_mem_usage or self.low_cpu_mem_usage,
            device_map=other.device_map or self.device_map,
            dtype=other.dtype or self.dtype,
            checkpoint_format=other.checkpoint_format or self.checkpoint_format,
            max_new_tokens=other.max_new_tokens or self.max_new_tokens,
        )

    def scenarios(self, max_new_tokens: int) -> list[Scenario]:
        """The product, axis by axis in YAML order, values in the order listed."""
        return [
            Scenario(lcmu, dm, dtype, fmt, max_new_tokens)
            for lcmu, dm, dtype, fmt in itertools.product(
                self.low_cpu_mem_usage, self.device_map, self.dtype, self.checkpoint_format
            )
        ]


DEFAULT_AXES = Axes(
    low_cpu_mem_usage=(None,),
    device_map=(None,),
    dtype=("float32",),
    checkpoint_format=("safetensors",),
)


@dataclass(frozen=True)
class Rule:
    """An include/exclude entry; an empty tuple means the key was not given (matches anything)."""

    stack: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    low_cpu_mem_usage: tuple[bool | None, ...] = ()
    device_map: tuple[str | None, ...] = ()
    dtype: tuple[str, ...] = ()
    checkpoint_format: tuple[str, ...] = ()

    def matches(self, cell: Cell) -> bool:
        sc = cell.scenario
        pairs: tuple[tuple[tuple[AxisValue, ...], AxisValue], ...] = (
            (self.stack, cell.stack.id),
            (self.model, cell.model.id),
            (self.low_cpu_mem_usage, sc.low_cpu_mem_usage),
            (self.device_map, sc.device_map),
            (self.dtype, sc.dtype),
            (self.checkpoint_format, sc.checkpoint_format),
        )
        return all(not wanted or value in wanted for wanted, value in pairs)

    @property
    def axes(self) -> Axes:
        return Axes(self.low_cpu_mem_usage, self.device_map, self.dtype, self.checkpoint_format)


@dataclass(frozen=True)
class Profile:
    name: str
    models: tuple[str, ...] = ()  # empty: all models
    stacks: tuple[str, ...] = ()  # empty: all stacks
    axes: Axes = Axes()  # overrides the top-level scenario axes, axis by axis
    repeats: int | None = None  # None: settings.repeats
    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Matrix:
    path: Path
    settings: Settings
    stacks: tuple[Stack, ...]
    models: tuple[Model, ...]
    profiles: Mapping[str, Profile]
    axes: Axes = DEFAULT_AXES  # top-level `scenarios`, complete
    include: tuple[Rule, ...] = ()  # top-level rules, applied in every profile
    exclude: tuple[Rule, ...] = ()
    compare: CompareSettings = CompareSettings()
    ci: CISettings = CISettings()

    def stack(self, stack_id: str) -> Stack:
        for stack in self.stacks:
            if stack.id == stack_id:
                return stack
        raise MatrixError(unknown("stack id", stack_id, [s.id for s in self.stacks]))

    def model(self, model_id: str) -> Model:
        for model in self.models:
            if model.id == model_id:
                return model
        raise MatrixError(unknown("model id", model_id, [m.id for m in self.models]))

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise MatrixError(unknown("profile", name, list(self.profiles))) from None

    def repeats(self, profile: str) -> int:
        repeats = self.profile(profile).repeats
        return self.settings.repeats if repeats is None else repeats

    def cells(
        self,
        profile: str = "default",
        *,
        models: Sequence[str] | None = None,
        stacks: Sequence[str] | None = None,
    ) -> list[Cell]:
        """The profile's cells, in stack, model, scenario order; `models`/`stacks` narrow it."""
        prof = self.profile(profile)
        stack_ids = _narrow(prof.stacks or [s.id for s in self.stacks], stacks, self.stack)
        model_ids = _narrow(prof.models or [m.id for m in self.models], models, self.model)
        axes = self.axes.overlay(prof.axes)
        max_new_tokens = axes.max_new_tokens or self.settings.max_new_tokens
        scenarios = axes.scenarios(max_new_tokens)
        exclude = (*self.exclude, *prof.exclude)
        cells: dict[Cell, None] = {}
        for stack_id, model_id in itertools.product(stack_ids, model_ids):
            for scenario in scenarios:
                cell = Cell(self.stack(stack_id), self.model(model_id), scenario)
                if not any(rule.matches(cell) for rule in exclude):
                    cells[cell] = None
        for rule in (*self.include, *prof.include):
            extra = rule.axes.scenarios(max_new_tokens)
            for stack_id in stack_ids:
                for model_id in model_ids:
                    if (not rule.stack or stack_id in rule.stack) and model_id in rule.model:
                        stack, model = self.stack(stack_id), self.model(model_id)
                        cells.update(dict.fromkeys(Cell(stack, model, sc) for sc in extra))
        return list(cells)


# --------------------------------------------------------------------------- helpers


def unknown(what: str, name: str, known: Iterable[str]) -> str:
    return f"unknown {what} {name!r} (known: {', '.join(sorted(known))})"


def _narrow(
    base: Sequence[str], wanted: Sequence[str] | None, lookup: Callable[[str], object]
) -> list[str]:
    if wanted is None:
        return list(base)
    if isinstance(wanted, str):
        wanted = (wanted,)
    for name in wanted:
        lookup(name)  # raises for unknown ids
    return [name for name in base if name in wanted]


def requirement_name(text: str) -> str:
    return canonicalize_name(Requirement(text).name)


def one_line(text: str) -> str:
    # Every line boundary of str.splitlines(), not only \r and \n (a key may hold \v or \u2028).
    return re.sub(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*", " ", text)
