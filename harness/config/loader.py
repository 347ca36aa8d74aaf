"""Load matrix.yaml: read, compose, validate (pydantic), build the dataclasses, check.

Every problem is a `MatrixError` of one line, ``<file>:<line>: <key.path>: <problem>``,
the first one in the file. Each pydantic error's `loc` is mapped to the line of that key
path (or of its nearest parent) in the composed YAML.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from harness.config import ids
from harness.config.checks import CheckError, check
from harness.config.domain import (
    DEFAULT_AXES,
    Axes,
    CISettings,
    CompareSettings,
    Matrix,
    MatrixError,
    Model,
    Profile,
    Rule,
    Settings,
    Stack,
)
from harness.config.fields import got
from harness.config.models import AxesEntry, MatrixDocument, ProfileEntry, RuleEntry, StackEntry
from harness.config.source import Loc, Source, SourceError, parse, read

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pydantic_core import ErrorDetails

__all__ = ["load", "validation_problem"]


def load(path: str | Path) -> Matrix:
    """Read and validate a matrix file; any problem raises a one-line `MatrixError`."""
    label = str(path)
    file = Path(path)
    try:
        source = parse(read(file, label), label)
    except SourceError as exc:
        raise MatrixError(str(exc)) from None
    if source.data is None:
        raise MatrixError(source.error((), "the file is empty; expected stacks, models, profiles"))
    base = file.resolve().parent
    try:
        doc = MatrixDocument.model_validate(source.data, context={"base": base})
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
            shown = got(ctx["shown"], source.raw.get(loc))
            problem = f"{problem}{ctx['sep']}{shown}{ctx['then']}"
        return loc, problem, bool(ctx.get("key"))
    if error["type"] == "missing":
        return loc[:-1], f"missing required key {loc[-1]!r}", False
    if error["type"] == "extra_forbidden":
        return loc, f"unknown key {loc[-1]!r}", True
    msg = error["msg"]
    shown = got(error["input"], source.raw.get(loc))
    return loc, f"{msg[:1].lower()}{msg[1:]}, got {shown}", False


# --------------------------------------------------------------------------- building


def _axes(entry: AxesEntry | None) -> Axes:
    if entry is None:
        return Axes()
    return Axes(
        low_cpu_mem_usage=entry.low_cpu_mem_usage,
        device_map=entry.device_map,
        dtype=entry.dtype,
        checkpoint_format=entry.checkpoint_format,
        max_new_tokens=entry.max_new_tokens,
    )


def _rules(entries: Sequence[RuleEntry] | None) -> tuple[Rule, ...]:
    return tuple(
        Rule(
            stack=e.stack,
            model=e.model,
            low_cpu_mem_usage=e.low_cpu_mem_usage,
            device_map=e.device_map,
            dtype=e.dtype,
            checkpoint_format=e.checkpoint_format,
        )
        for e in entries or ()
    )


def _stack(e: StackEntry) -> Stack:
    if e.install is False:
        return Stack(id=str(e.id), python=e.python, transformers="", torch="", install=False)
    transformers, torch = str(e.transformers), str(e.torch)
    return Stack(
        id=e.id or ids.stack_id(transformers, torch, e.python),
        python=e.python,
        transformers=transformers,
        torch=torch,
        accelerate=e.accelerate,
        pins=e.pins,
        find_links=e.find_links,
        index_url=e.index_url,
        torch_backend=e.torch_backend,
    )


def _profile(name: str, e: ProfileEntry | None) -> Profile:
    e = e or ProfileEntry()
    return Profile(
        name=name,
        models=e.models,
        stacks=e.stacks,
        axes=_axes(e.scenarios),
        repeats=e.repeats,
        include=_rules(e.include),
        exclude=_rules(e.exclude),
    )


def _settings(doc: MatrixDocument) -> Settings:
    s, default = doc.settings, Settings()
    if s is None:
        return default
    tolerance = dict(default.golden_tolerance)
    if s.golden_tolerance is not None:
        tolerance.update(s.golden_tolerance.model_dump())
    return Settings(
        repeats=default.repeats if s.repeats is None else s.repeats,
        timeout_s=default.timeout_s if s.timeout_s is None else s.timeout_s,
        mode=default.mode if s.mode is None else s.mode,
        max_new_tokens=default.max_new_tokens if s.max_new_tokens is None else s.max_new_tokens,
        golden_tolerance=MappingProxyType(tolerance),
    )


def _compare(doc: MatrixDocument) -> CompareSettings:
    c, default = doc.compare, CompareSettings()
    if c is None:
        return default
    return CompareSettings(
        memory=default.memory if c.memory is None else c.memory,
        time=default.time if c.time is None else c.time,
        alpha=default.alpha if c.alpha is None else c.alpha,
        min_repeats=default.min_repeats if c.min_repeats is None else c.min_repeats,
        memory_floor_mb=default.memory_floor_mb if c.memory_floor_mb is None else c.memory_floor_mb,
        fail_on=default.fail_on if c.fail_on is None else c.fail_on,
    )


def _ci(doc: MatrixDocument) -> CISettings:
    default = CISettings()
    if doc.ci is None:
        return default
    return CISettings(
        cpu_runner=doc.ci.cpu_runner or default.cpu_runner,
        gpu_runner=doc.ci.gpu_runner or default.gpu_runner,
    )


def build(doc: MatrixDocument, file: Path) -> Matrix:
    """The frozen data model of a validated document."""
    models = tuple(
        Model(
            id=name,
            source=m.source,
            location=m.location(name),
            prompts=m.prompts,
            revision=m.revision,
            trust_remote_code=bool(m.trust_remote_code),
        )
        for name, m in doc.models.items()
    )
    return Matrix(
        path=file,
        settings=_settings(doc),
        stacks=tuple(_stack(s) for s in doc.stacks),
        models=models,
        profiles=MappingProxyType({n: _profile(n, p) for n, p in doc.profiles.items()}),
        axes=DEFAULT_AXES.overlay(_axes(doc.scenarios)),
        include=_rules(doc.include),
        exclude=_rules(doc.exclude),
        compare=_compare(doc),
        ci=_ci(doc),
    )
