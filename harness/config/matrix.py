"""matrix.yaml: the frozen data model and `load`, which validates the file into it.

Every problem is a `MatrixError` of one line, ``<file>:<line>: <key.path>: <problem>``, the
first in the file: the pydantic models (models.py) check each entry, checks.py what crosses
entries; each error's key path is mapped to its line in the YAML (source.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from harness.config import ids, sweeps
from harness.config.checks import CheckError, check
from harness.config.fields import DEVICE_MAPS, got, requirement_name, unknown
from harness.config.models import (
    AXES,
    CHECKPOINT_FORMATS,
    DEFAULT_GOLDEN_TOLERANCE,
    DTYPES,
    EMBEDDED,
    MODES,
    PRESETS,
    PROFILES_REQUIRED,
    SOURCES,
    AxesEntry,
    LaunchEntry,
    MatrixDocument,
    ProfileEntry,
    RuleEntry,
)
from harness.config.source import Loc, Source, SourceError, one_line, parse, read
from harness.metrics import FAIL_ON_CHOICES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from pydantic_core import ErrorDetails

    from harness.config.sweeps import SweepEntry

__all__ = [
    "AXES", "CHECKPOINT_FORMATS", "DEFAULT_AXES", "DEFAULT_GOLDEN_TOLERANCE", "DEVICE_MAPS",
    "DTYPES", "EMBEDDED", "FAIL_ON_CHOICES", "MODES", "PRESETS", "PROFILES_REQUIRED", "SOURCES",
    "Axes", "CISettings", "Cell", "CompareSettings", "Matrix", "MatrixError", "Model", "Profile",
    "Rule", "Scenario", "Settings", "Stack", "load", "one_line", "validation_problem",
]  # fmt: skip

AxisValue = bool | str | None


class MatrixError(Exception):
    """A problem with the matrix file or a lookup in it; str() is a single line."""


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
    shards: int = 1  # a GPT-2 preset written in this many checkpoint files
    allow_unsafe_pickle: bool = False  # unpickle .bin where torch has no weights_only


@dataclass(frozen=True)
class Scenario:
    low_cpu_mem_usage: bool | None
    device_map: str | None
    dtype: str
    checkpoint_format: str
    max_new_tokens: int
    batch: int = 1
    attn_implementation: str = "default"
    quantization: str = "none"
    offload: str = "none"

    @property
    def axes(self) -> ids.ScenarioAxes:
        return ids.ScenarioAxes(*(getattr(self, axis) for axis in AXES))

    @property
    def id(self) -> str:
        return ids.scenario_id(*(getattr(self, axis) for axis in AXES))


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
    # torch's intra- and inter-op threads in every run; None: the cores this process may use.
    threads: int | None = None
    interop_threads: int | None = None


@dataclass(frozen=True)
class CompareSettings:
    """Thresholds for `nox -s compare`: relative changes, the test level, the CI policy."""

    memory: float = 0.05  # a memory metric must move by 5% to count
    time: float = 0.10  # load, first-token and decode times: 10%
    alpha: float = 0.05  # 95% confidence intervals; Mann-Whitney U at this level
    min_repeats: int = 3  # fewer repeats on either side: `uncertain`
    memory_floor_mb: float = 1.0  # smaller absolute moves are page and allocator noise
    # ... and moves smaller than this share of the model's weights: a few MiB of library
    # pages more is not a regression of a 500 MiB model.
    memory_floor_share: float = 0.02
    # Below these weights, figures that count file pages (peak_mb, file_mb) are mostly
    # torch's own code: such a model's memory is judged by its anonymous memory alone.
    min_weights_mb: float = 64.0
    fail_on: tuple[str, ...] = ("memory", "status", "golden")


@dataclass(frozen=True)
class CISettings:
    """Runner labels for the workflow `nox -s ci-workflow` writes."""

    cpu_runner: tuple[str, ...] = ("ubuntu-latest",)
    gpu_runner: tuple[str, ...] = ("self-hosted", "gpu")


# The validated entries are the data model of scenario axes, rules and profiles: an empty
# tuple (or None) means "not given here" (a rule: matches anything; a profile: everything).
Axes = AxesEntry
Rule = RuleEntry
Profile = ProfileEntry
DEFAULT_AXES = Axes.model_construct(
    low_cpu_mem_usage=(None,),
    device_map=(None,),
    dtype=(DTYPES[0],),
    checkpoint_format=(CHECKPOINT_FORMATS[0],),
    batch=(1,),
    attn_implementation=("default",),
    quantization=("none",),
    offload=("none",),
)


def _overlay(base: Axes, top: Axes | None) -> Axes:
    """`base` with every axis that `top` gives replaced by top's values."""
    return base.model_copy(update={k: v for k, v in top or () if v})


def _scenarios(axes: Axes | Rule, max_new_tokens: int) -> list[Scenario]:
    """The product, axis by axis in YAML order, values in the order listed; a later axis
    that an include rule leaves out takes its default. Disk offload is device_map="auto"'s:
    with another device_map it means nothing, and such combinations are left out."""
    values = [getattr(axes, axis) or getattr(DEFAULT_AXES, axis) for axis in AXES]
    found = (
        Scenario(**dict(zip(AXES, combo, strict=True)), max_new_tokens=max_new_tokens)
        for combo in itertools.product(*values)
    )
    return [s for s in found if s.offload == "none" or s.device_map == "auto"]


def _matches(rule: Rule, cell: Cell) -> bool:
    pairs: list[tuple[tuple[AxisValue, ...], AxisValue]] = [
        (rule.stack, cell.stack.id),
        (rule.model, cell.model.id),
        *((getattr(rule, axis), getattr(cell.scenario, axis)) for axis in AXES),
    ]
    return all(not wanted or value in wanted for wanted, value in pairs)


@dataclass(frozen=True)
class Matrix:
    path: Path
    settings: Settings
    stacks: tuple[Stack, ...]
    models: tuple[Model, ...]
    profiles: Mapping[str, Profile]
    axes: Axes = field(default_factory=lambda: DEFAULT_AXES)  # top-level `scenarios`, complete
    include: tuple[Rule, ...] = ()  # top-level rules, applied in every profile
    exclude: tuple[Rule, ...] = ()
    compare: CompareSettings = CompareSettings()
    ci: CISettings = CISettings()
    launch: LaunchEntry = field(default_factory=LaunchEntry)  # --launcher slurm's jobs
    sweeps: tuple[SweepEntry, ...] = ()

    def swept(self, listing: Callable[[str], Iterable[str]]) -> Matrix:
        """This matrix with the stacks its sweeps generate, after the hand-listed ones."""
        if not self.sweeps:
            return self
        made = sweeps.stacks(self.sweeps, listing, known=[s.id for s in self.stacks])
        return replace(self, stacks=(*self.stacks, *(Stack(**kw) for kw in made)))

    def with_stand_ins(self) -> Matrix:
        """One stack per sweep standing in for those it generates, to check profiles offline."""
        extra = (Stack(f"sweep-{i}", s.python, "sweep", s.torch[0]) for i, s in enumerate(self.sweeps))  # fmt: skip  # noqa: E501
        return replace(self, stacks=(*self.stacks, *extra))

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
        axes = _overlay(self.axes, prof.scenarios)
        max_new_tokens = axes.max_new_tokens or self.settings.max_new_tokens
        exclude = (*self.exclude, *(prof.exclude or ()))
        cells: dict[Cell, None] = {}
        for stack_id, model_id in itertools.product(stack_ids, model_ids):
            for scenario in _scenarios(axes, max_new_tokens):
                cell = Cell(self.stack(stack_id), self.model(model_id), scenario)
                if not any(_matches(rule, cell) for rule in exclude):
                    cells[cell] = None
        for rule in (*self.include, *(prof.include or ())):
            extra = _scenarios(rule, max_new_tokens)
            for stack_id, model_id in itertools.product(stack_ids, model_ids):
                if (not rule.stack or stack_id in rule.stack) and model_id in rule.model:
                    stack, model = self.stack(stack_id), self.model(model_id)
                    cells.update(dict.fromkeys(Cell(stack, model, sc) for sc in extra))
        return list(cells)


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


def load(path: str | Path) -> Matrix:
    """Read and validate a matrix file; any problem raises a one-line `MatrixError`."""
    label, file = str(path), Path(path)
    try:
        source = parse(read(file, label), label)
    except SourceError as exc:
        raise MatrixError(str(exc)) from None
    if source.data is None:
        raise MatrixError(source.error((), "the file is empty; expected stacks, models, profiles"))
    try:
        doc = MatrixDocument.model_validate(source.data, context={"base": file.resolve().parent})
    except ValidationError as exc:
        raise MatrixError(validation_problem(source, exc)) from None
    matrix = build(doc, file)
    try:
        check(doc, matrix, source)
    except CheckError as exc:
        raise MatrixError(source.error(exc.loc, exc.problem, key=exc.key)) from None
    return matrix


def validation_problem(source: Source, exc: ValidationError) -> str:
    """The one-line message of the first (topmost in the file) of `exc`'s errors."""
    found = [_problem(source, error) for error in exc.errors(include_url=False)]
    loc, problem, key = min(found, key=lambda f: source.line(f[0], key=f[2]))
    return source.error(loc, problem, key=key)


def _problem(source: Source, error: ErrorDetails) -> tuple[Loc, str, bool]:
    loc: Loc = tuple(error["loc"])
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if error["type"] == "harness":
        at = ctx.get("at")
        if at is not None:
            loc = (*loc, *(at if isinstance(at, tuple | list) else (at,)))
        problem = str(ctx["problem"])
        if "shown" in ctx:
            problem += f"{ctx['sep']}{got(ctx['shown'], source.raw.get(loc))}{ctx['then']}"
        return loc, problem, bool(ctx.get("key"))
    if error["type"] == "missing":
        return loc[:-1], f"missing required key {loc[-1]!r}", False
    msg = error["msg"]
    return loc, f"{msg[:1].lower()}{msg[1:]}, got {got(error['input'], source.raw.get(loc))}", False


def _given(entry: BaseModel | None) -> dict[str, Any]:
    """The keys given, and not as null: the rest keep the dataclass's defaults."""
    return {} if entry is None else entry.model_dump(exclude_unset=True, exclude_none=True)


def build(doc: MatrixDocument, file: Path) -> Matrix:
    """The frozen data model of a validated document."""
    stacks = []
    for s in doc.stacks:
        if s.install is False:
            stacks.append(Stack(str(s.id), s.python, "", "", install=False))
            continue
        kept = s.model_dump(exclude={"id", "install"})
        stacks.append(Stack(id=s.id or ids.stack_id(str(s.transformers), str(s.torch), s.python), **kept))  # fmt: skip  # noqa: E501
    models = tuple(
        Model(
            name,
            m.source,
            m.location(name),
            m.prompts,
            m.revision,
            bool(m.trust_remote_code),
            m.shards or 1,
            bool(m.allow_unsafe_pickle),
        )
        for name, m in doc.models.items()
    )
    settings = _given(doc.settings)
    tolerance = {**DEFAULT_GOLDEN_TOLERANCE, **settings.pop("golden_tolerance", {})}
    return Matrix(
        path=file,
        settings=Settings(**settings, golden_tolerance=MappingProxyType(tolerance)),
        stacks=tuple(stacks),
        models=models,
        profiles=MappingProxyType({n: p or Profile() for n, p in doc.profiles.items()}),
        axes=_overlay(DEFAULT_AXES, doc.scenarios),
        include=doc.include or (),
        exclude=doc.exclude or (),
        compare=CompareSettings(**_given(doc.compare)),
        ci=CISettings(**_given(doc.ci)),
        launch=doc.launch or LaunchEntry(),
        sweeps=doc.sweeps,
    )
