"""The validating loader of matrix.yaml: node by node, so every problem has its line.

Line numbers come from PyYAML's node tree (`yaml.compose`), so they point at the offending
key or value, and duplicate mapping keys, which PyYAML's loader silently collapses, are
caught. The data model it builds lives in harness/matrix.py.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, NoReturn, TypeVar

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from harness.config import ids
from harness.config.matrix import (
    AXES,
    CHECKPOINT_FORMATS,
    DEFAULT_AXES,
    DEFAULT_GOLDEN_TOLERANCE,
    DEVICE_MAPS,
    DTYPES,
    EMBEDDED,
    FAIL_ON_CHOICES,
    MODES,
    PRESETS,
    PROFILES_REQUIRED,
    SOURCES,
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
    _one_line,
    _requirement_name,
    _unknown,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

_TOP_KEYS = (
    "settings", "stacks", "models", "scenarios", "exclude", "include", "profiles", "compare", "ci",
)  # fmt: skip
_SETTINGS_KEYS = ("repeats", "timeout_s", "mode", "max_new_tokens", "golden_tolerance")
_COMPARE_KEYS = ("memory", "time", "alpha", "min_repeats", "memory_floor_mb", "fail_on")
_STACK_KEYS = (
    "id",
    "install",
    "python",
    "transformers",
    "torch",
    "accelerate",
    "pins",
    "find_links",
    "index_url",
    "torch_backend",
)
_MODEL_KEYS = (
    "source",
    "prompts",
    "fixture",
    "preset",
    "path",
    "repo",
    "revision",
    "trust_remote_code",
)
_SOURCE_KEYS = {
    "embedded": ("source", "prompts", "fixture"),
    "preset": ("source", "prompts", "preset"),
    "local": ("source", "prompts", "path", "trust_remote_code"),
    "hub": ("source", "prompts", "repo", "revision", "trust_remote_code"),
}
_SCENARIO_KEYS = (*AXES, "max_new_tokens")
_RULE_KEYS = ("stack", "model", *AXES)
_PROFILE_KEYS = ("models", "stacks", "scenarios", "repeats", "include", "exclude")

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_PYTHON_RE = re.compile(r"3\.(\d{1,2})")
_PYTHON_MINORS = range(8, 15)
_REPO_RE = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_TORCH_BACKEND_RE = re.compile(r"auto|cpu|xpu|cu\d+|rocm\d+(\.\d+)*")

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_KINDS = {
    _INT: "a YAML integer",
    _FLOAT: "a YAML float",
    _BOOL: "a YAML boolean",
    "tag:yaml.org,2002:timestamp": "a YAML timestamp",
}
_CONSTRUCT = yaml.constructor.SafeConstructor()

T = TypeVar("T")
_Entries = dict[str, tuple[yaml.Node, yaml.Node]]


def _got(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _STR:
        return repr(node.value)
    if node.tag == _NULL:
        return "nothing (null)"
    return f"{node.value} ({_KINDS.get(node.tag, f'tagged {node.tag}')})"


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL)


def _compose(text: str) -> yaml.Node | None:
    """yaml.compose; nesting too deep for the composer's recursion is a YAML error too."""
    loader = yaml.SafeLoader(text)
    try:
        return loader.get_single_node()
    except RecursionError:
        problem = "collections nested too deeply"
        raise yaml.MarkedYAMLError(problem=problem, problem_mark=loader.get_mark()) from None
    finally:
        loader.dispose()


def _read_number(node: yaml.ScalarNode) -> float:
    if node.tag == _INT:
        return float(_CONSTRUCT.construct_yaml_int(node))
    return _CONSTRUCT.construct_yaml_float(node)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path and path != "(top level)" else key


class Loader:
    """Walks the composed node tree; every check knows its node, hence its line."""

    def __init__(self, label: str, base: Path) -> None:
        self.label = label
        self.base = base

    def error(self, node: yaml.Node | None, path: str, problem: str) -> MatrixError:
        line = 1 if node is None else node.start_mark.line + 1
        return MatrixError(_one_line(f"{self.label}:{line}: {path}: {problem}"))

    def fail(self, node: yaml.Node | None, path: str, problem: str) -> NoReturn:
        raise self.error(node, path, problem)

    # ---- the document

    def document(self, text: str, file: Path) -> Matrix:
        try:
            root = _compose(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = 1 if mark is None else mark.line + 1
            problem = exc.problem or exc.context or "invalid YAML"
            if exc.problem and exc.context:
                problem = f"{exc.problem} ({exc.context})"
            msg = f"{self.label}:{line}: YAML syntax error: {problem}"
            raise MatrixError(_one_line(msg)) from None
        except yaml.reader.ReaderError as exc:  # a control character; its offset in the text
            line = text.count("\n", 0, exc.position) + 1
            problem = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
            raise MatrixError(
                _one_line(f"{self.label}:{line}: YAML syntax error: {problem}")
            ) from None
        except yaml.YAMLError as exc:
            msg = f"{self.label}:1: YAML syntax error: {exc}"
            raise MatrixError(_one_line(msg)) from None
        if root is None:
            self.fail(None, "(top level)", "the file is empty; expected stacks, models, profiles")
        top = self.mapping(root, "", _TOP_KEYS, ("stacks", "models", "profiles"))
        settings = self.settings(top.get("settings"))
        stacks = self.stacks(top["stacks"][1])
        models = self.models(top["models"][1])
        stack_ids = [s.id for s in stacks]
        model_ids = [m.id for m in models]
        axes = DEFAULT_AXES.overlay(self.axes(top.get("scenarios"), "scenarios"))
        refs = (self.reference("stack", stack_ids), self.reference("model", model_ids))
        include = self.rules(top.get("include"), "include", refs, include=True)
        exclude = self.rules(top.get("exclude"), "exclude", refs, include=False)
        profiles, lines = self.profiles(top["profiles"][1], stack_ids, model_ids)
        compare = self.compare(top.get("compare"))
        ci = self.ci(top.get("ci"))
        matrix = Matrix(
            path=file,
            settings=settings,
            stacks=stacks,
            models=models,
            profiles=MappingProxyType(profiles),
            axes=axes,
            include=include,
            exclude=exclude,
            compare=compare,
            ci=ci,
        )
        for name, key_node in lines.items():
            if not matrix.cells(name):
                problem = f"profile {name!r} selects no cells (exclude rules remove them all)"
                self.fail(key_node, f"profiles.{name}", problem)
        return matrix

    # ---- generic shapes

    def mapping(
        self,
        node: yaml.Node,
        path: str,
        allowed: Sequence[str] | None = None,
        required: Sequence[str] = (),
    ) -> _Entries:
        where = path or "(top level)"
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, where, f"expected a mapping, got {_got(node)}")
        entries = self.entries(node, where, set())
        for key, (key_node, _) in entries.items():
            if allowed is not None and key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problem = f"unknown key {key!r} ({hint}allowed: {', '.join(allowed)})"
                self.fail(key_node, _child(path, key), problem)
        for key in required:
            if key not in entries:
                self.fail(node, where, f"missing required key {key!r}")
        return entries

    def entries(self, node: yaml.MappingNode, path: str, active: set[int]) -> _Entries:
        """Keys to (key node, value node); duplicates fail, `<<` merge keys are honored."""
        if id(node) in active:
            self.fail(node, path, "recursive merge key")
        if len(active) >= 100:
            self.fail(node, path, "merge keys (<<) nested too deeply")
        active.add(id(node))
        own: _Entries = {}
        merged: _Entries = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self.merge_sources(value_node, path):
                    for key, pair in self.entries(source, path, active).items():
                        merged.setdefault(key, pair)
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
                self.fail(key_node, path, f"keys must be plain strings, got {_got(key_node)}")
            key = str(key_node.value)
            if key in own:
                first = own[key][0].start_mark.line + 1
                self.fail(
                    key_node, _child(path, key), f"duplicate key {key!r} (first at line {first})"
                )
            own[key] = (key_node, value_node)
        active.discard(id(node))
        return {**merged, **own}

    def merge_sources(self, node: yaml.Node, path: str) -> list[yaml.MappingNode]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for item in items:
            if not isinstance(item, yaml.MappingNode):
                self.fail(item, path, f"a merge key (<<) needs a mapping, got {_got(item)}")
        return list(items)

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, path, f"expected a list, got {_got(node)}")
        return list(node.value)

    def string(self, node: yaml.Node, path: str, what: str = "a string") -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            quote = isinstance(node, yaml.ScalarNode) and node.tag != _NULL
            self.fail(
                node, path, f"expected {what}, got {_got(node)}{'; quote it' if quote else ''}"
            )
        value = str(node.value)
        if not value.strip():
            self.fail(node, path, f"expected {what}, got an empty string")
        return value

    def integer(self, node: yaml.Node, path: str) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
            self.fail(node, path, f"expected a positive integer, got {_got(node)}")
        value = self.construct(node, path, _CONSTRUCT.construct_yaml_int)
        if value < 1:
            self.fail(node, path, f"must be positive, got {value}")
        return value

    def number(self, node: yaml.Node, path: str) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_INT, _FLOAT):
            self.fail(node, path, f"expected a positive number, got {_got(node)}")
        value = self.construct(node, path, _read_number)
        if not math.isfinite(value) or value <= 0:
            self.fail(node, path, f"must be positive and finite, got {node.value}")
        return value

    def boolean(self, node: yaml.Node, path: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            self.fail(node, path, f"expected true or false, got {_got(node)}")
        return self.construct(node, path, _CONSTRUCT.construct_yaml_bool)

    def construct(
        self, node: yaml.ScalarNode, path: str, read: Callable[[yaml.ScalarNode], T]
    ) -> T:
        """A tagged scalar's value; one YAML cannot read (`0x_`, `!!int abc`, `!!float ""`,
        `!!bool maybe`, an int of over 4300 digits, one too large for a float) fails."""
        try:
            return read(node)
        except (ValueError, KeyError, IndexError, OverflowError):
            shown = node.value if len(node.value) <= 20 else f"{node.value[:20]}..."
            self.fail(node, path, f"cannot read {shown!r} as {_KINDS.get(node.tag, node.tag)}")

    def choice(self, node: yaml.Node, path: str, choices: Sequence[str]) -> str:
        expected = f"one of {', '.join(choices)}"
        value = self.string(node, path, expected)
        if value not in choices:
            self.fail(node, path, f"expected {expected}, got {value!r}")
        return value

    def optional(
        self, entries: _Entries, key: str, path: str, parse: Callable[[yaml.Node, str], T]
    ) -> T | None:
        """Parse `key` if present; absent or null means "not given"."""
        if key not in entries or _is_null(entries[key][1]):
            return None
        return parse(entries[key][1], _child(path, key))

    def values(
        self, entries: _Entries, key: str, path: str, parse: Callable[[yaml.Node, str], T]
    ) -> tuple[T, ...]:
        """A scalar or a non-empty list of distinct values; () when the key is absent."""
        if key not in entries:
            return ()
        node, where = entries[key][1], _child(path, key)
        if not isinstance(node, yaml.SequenceNode):
            return (parse(node, where),)
        if not node.value:
            self.fail(node, where, "must not be empty (omit the key instead)")
        out: list[T] = []
        for i, item in enumerate(node.value):
            value = parse(item, f"{where}[{i}]")
            if value in out:
                self.fail(item, f"{where}[{i}]", f"duplicate value {_got(item)}")
            out.append(value)
        return tuple(out)

    # ---- settings

    def settings(self, pair: tuple[yaml.Node, yaml.Node] | None) -> Settings:
        if pair is None or _is_null(pair[1]):
            return Settings()
        entries = self.mapping(pair[1], "settings", _SETTINGS_KEYS)
        default = Settings()
        repeats = self.optional(entries, "repeats", "settings", self.integer)
        timeout_s = self.optional(entries, "timeout_s", "settings", self.number)
        mode = self.optional(entries, "mode", "settings", self.mode)
        max_new_tokens = self.optional(entries, "max_new_tokens", "settings", self.integer)
        tolerance = dict(DEFAULT_GOLDEN_TOLERANCE)
        if "golden_tolerance" in entries and not _is_null(entries["golden_tolerance"][1]):
            path = "settings.golden_tolerance"
            given = self.mapping(entries["golden_tolerance"][1], path, DTYPES)
            for dtype, (_, value) in given.items():
                tolerance[dtype] = self.number(value, _child(path, dtype))
        return Settings(
            repeats=default.repeats if repeats is None else repeats,
            timeout_s=default.timeout_s if timeout_s is None else timeout_s,
            mode=default.mode if mode is None else mode,
            max_new_tokens=default.max_new_tokens if max_new_tokens is None else max_new_tokens,
            golden_tolerance=MappingProxyType(tolerance),
        )

    def mode(self, node: yaml.Node, path: str) -> str:
        return self.choice(node, path, MODES)

    # ---- compare

    def ci(self, pair: tuple[yaml.Node, yaml.Node] | None) -> CISettings:
        if pair is None or _is_null(pair[1]):
            return CISettings()
        entries = self.mapping(pair[1], "ci", ("cpu_runner", "gpu_runner"))
        default = CISettings()
        labels = {}
        for key in ("cpu_runner", "gpu_runner"):
            # A runner is one label or a list of labels, as `runs-on` takes them.
            labels[key] = self.values(entries, key, "ci", self.string) or getattr(default, key)
        return CISettings(cpu_runner=labels["cpu_runner"], gpu_runner=labels["gpu_runner"])

    def compare(self, pair: tuple[yaml.Node, yaml.Node] | None) -> CompareSettings:
        if pair is None or _is_null(pair[1]):
            return CompareSettings()
        entries = self.mapping(pair[1], "compare", _COMPARE_KEYS)
        default = CompareSettings()
        memory = self.optional(entries, "memory", "compare", self.number)
        time = self.optional(entries, "time", "compare", self.number)
        alpha = self.optional(entries, "alpha", "compare", self.fraction)
        min_repeats = self.optional(entries, "min_repeats", "compare", self.integer)
        floor = self.optional(entries, "memory_floor_mb", "compare", self.non_negative)
        fail_on = default.fail_on
        if "fail_on" in entries:
            node = entries["fail_on"][1]
            # An empty list is allowed: compare reports, and never fails the build.
            if not (isinstance(node, yaml.SequenceNode) and not node.value):
                fail_on = self.values(entries, "fail_on", "compare", self.fail_on)
            else:
                fail_on = ()
        return CompareSettings(
            memory=default.memory if memory is None else memory,
            time=default.time if time is None else time,
            alpha=default.alpha if alpha is None else alpha,
            min_repeats=default.min_repeats if min_repeats is None else min_repeats,
            memory_floor_mb=default.memory_floor_mb if floor is None else floor,
            fail_on=fail_on,
        )

    def fraction(self, node: yaml.Node, path: str) -> float:
        value = self.number(node, path)
        if value >= 1:
            self.fail(node, path, f"expected a number between 0 and 1, got {node.value}")
        return value

    def non_negative(self, node: yaml.Node, path: str) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_INT, _FLOAT):
            self.fail(node, path, f"expected a number >= 0, got {_got(node)}")
        value = self.construct(node, path, _read_number)
        if not math.isfinite(value) or value < 0:
            self.fail(node, path, f"must be >= 0 and finite, got {node.value}")
        return value

    def fail_on(self, node: yaml.Node, path: str) -> str:
        return self.choice(node, path, FAIL_ON_CHOICES)

    # ---- stacks

    def stacks(self, node: yaml.Node) -> tuple[Stack, ...]:
        items = self.sequence(node, "stacks")
        if not items:
            self.fail(node, "stacks", "must list at least one stack")
        seen: dict[str, str] = {}
        stacks: list[Stack] = []
        for i, item in enumerate(items):
            path = f"stacks[{i}]"
            stack = self.stack(item, path)
            if stack.id in seen:
                entries = self.mapping(item, path)
                where = entries["id"][1] if "id" in entries else item
                problem = f"duplicate stack id {stack.id!r} (also {seen[stack.id]})"
                self.fail(where, _child(path, "id"), problem)
            seen[stack.id] = f"{path}, line {item.start_mark.line + 1}"
            stacks.append(stack)
        return tuple(stacks)

    def existing_stack(self, node: yaml.Node, path: str, entries: _Entries) -> Stack:
        for key in _STACK_KEYS:
            if key not in ("id", "install", "python") and key in entries:
                problem = "an existing environment (install: false) installs nothing"
                self.fail(entries[key][0], _child(path, key), problem)
        stack_id = self.optional(entries, "id", path, self.identifier)
        if stack_id is None:
            self.fail(
                node, _child(path, "id"), "an existing environment (install: false) needs an id"
            )
        where = _child(path, "python")
        value = self.string(entries["python"][1], where, "the path of an interpreter")
        try:
            python = Path(value).expanduser()
            if not python.is_absolute():
                # normpath, not resolve(): a venv's bin/python is a symlink to the base
                # interpreter, and following it would leave the environment behind.
                python = Path(os.path.normpath(self.base / python))
        except (RuntimeError, ValueError) as exc:  # ~unknown-user, a NUL byte
            self.fail(entries["python"][1], where, f"invalid interpreter path {value!r}: {exc}")
        return Stack(id=stack_id, python=str(python), transformers="", torch="", install=False)

    def stack(self, node: yaml.Node, path: str) -> Stack:
        entries = self.mapping(node, path, _STACK_KEYS, ("python",))
        install = self.optional(entries, "install", path, self.boolean)
        if install is False:
            return self.existing_stack(node, path, entries)
        for key in ("transformers", "torch"):
            if key not in entries:
                self.fail(node, path, f"missing required key {key!r}")
        python = self.python(entries["python"][1], f"{path}.python")
        transformers = self.version(entries["transformers"][1], f"{path}.transformers", "4.46.3")
        torch = self.version(entries["torch"][1], f"{path}.torch", "2.5.1")
        accelerate = self.optional(entries, "accelerate", path, self.accelerate)
        pins = self.pins(entries, path, accelerate_set=accelerate is not None)
        find_links = self.values(entries, "find_links", path, self.find_link)
        index_url = self.optional(entries, "index_url", path, self.url)
        torch_backend = self.optional(entries, "torch_backend", path, self.torch_backend)
        stack_id = self.optional(entries, "id", path, self.identifier)
        return Stack(
            id=stack_id or ids.stack_id(transformers, torch, python),
            python=python,
            transformers=transformers,
            torch=torch,
            accelerate=accelerate,
            pins=pins,
            find_links=find_links,
            index_url=index_url,
            torch_backend=torch_backend,
        )

    def python(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path, 'a Python version string like "3.11"')
        match = _PYTHON_RE.fullmatch(value)
        if match is None or int(match.group(1)) not in _PYTHON_MINORS:
            problem = f"expected a Python major.minor version from 3.8 to 3.14, got {value!r}"
            self.fail(node, path, problem)
        return value

    def version(self, node: yaml.Node, path: str, example: str) -> str:
        value = self.string(node, path, f'a version string like "{example}"')
        if value[:1] in "<>=!~^*" or "," in value:
            problem = f'expected an exact version like "{example}", got the specifier {value!r}'
            self.fail(node, path, problem)
        try:
            Version(value)
        except InvalidVersion:
            problem = f'invalid version {value!r}; expected an exact version like "{example}"'
            self.fail(node, path, problem)
        if value != value.strip():
            self.fail(node, path, f"version {value!r} has surrounding spaces")
        return value

    def accelerate(self, node: yaml.Node, path: str) -> str:
        return self.version(node, path, "1.1.1")

    def pins(self, entries: _Entries, path: str, *, accelerate_set: bool) -> tuple[str, ...]:
        pins = self.values(entries, "pins", path, self.requirement)
        node = entries["pins"][1] if "pins" in entries else None
        for i, pin in enumerate(pins):
            name = _requirement_name(pin)
            where = f"{path}.pins[{i}]" if isinstance(node, yaml.SequenceNode) else f"{path}.pins"
            item = node.value[i] if isinstance(node, yaml.SequenceNode) else node
            if name in ("torch", "transformers") or (name == "accelerate" and accelerate_set):
                self.fail(item, where, f"{pin!r} conflicts with the stack's own {name!r} key")
        return pins

    def requirement(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path, 'a requirement string like "numpy<2"')
        try:
            Requirement(value)
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0] if str(exc) else "unparsable"
            self.fail(node, path, f"invalid requirement {value!r}: {reason}")
        return value

    def find_link(self, node: yaml.Node, path: str) -> str:
        """A URL, or a folder; relative folders are taken from the matrix file's folder."""
        value = self.string(node, path, "a URL or a folder path")
        if _URL_RE.fullmatch(value):
            return value
        return self.folder(node, path, value)

    def folder(self, node: yaml.Node, path: str, value: str) -> str:
        """`value` made absolute, from the matrix file's folder; `~user` and NUL bytes fail."""
        try:
            return str((self.base / Path(value).expanduser()).resolve())
        except (RuntimeError, ValueError, OSError) as exc:
            self.fail(node, path, f"invalid folder path {value!r}: {exc}")

    def url(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path, "a URL")
        if not _URL_RE.fullmatch(value):
            self.fail(node, path, f"expected a URL like https://host/simple, got {value!r}")
        return value

    def torch_backend(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path, 'a uv torch backend like "cpu" or "cu124"')
        if not _TORCH_BACKEND_RE.fullmatch(value):
            problem = f"expected auto, cpu, xpu, cuXYZ or rocmX.Y, got {value!r}"
            self.fail(node, path, problem)
        return value

    def identifier(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path, "an id")
        if not _ID_RE.fullmatch(value):
            problem = f"invalid id {value!r}: use letters, digits and . _ + - (no / or spaces)"
            self.fail(node, path, problem)
        return value

    # ---- models

    def models(self, node: yaml.Node) -> tuple[Model, ...]:
        entries = self.mapping(node, "models")
        if not entries:
            self.fail(node, "models", "must define at least one model")
        return tuple(self.model(name, key, value) for name, (key, value) in entries.items())

    def model(self, name: str, key: yaml.Node, node: yaml.Node) -> Model:
        path = f"models.{name}"
        if not _ID_RE.fullmatch(name):
            problem = f"invalid model id {name!r}: use letters, digits and . _ + - (no / or spaces)"
            self.fail(key, path, problem)
        entries = self.mapping(node, path, _MODEL_KEYS, ("source", "prompts"))
        source = self.choice(entries["source"][1], f"{path}.source", SOURCES)
        for other, (other_key, _) in entries.items():
            if other not in _SOURCE_KEYS[source]:
                allowed = ", ".join(_SOURCE_KEYS[source])
                problem = f"not allowed for source {source!r} (allowed: {allowed})"
                self.fail(other_key, f"{path}.{other}", problem)
        prompts = self.sequence(entries["prompts"][1], f"{path}.prompts")
        if not prompts:
            self.fail(entries["prompts"][1], f"{path}.prompts", "must list at least one prompt")
        return Model(
            id=name,
            source=source,
            location=self.location(source, name, key, entries, path),
            prompts=tuple(self.string(p, f"{path}.prompts[{i}]") for i, p in enumerate(prompts)),
            revision=self.optional(entries, "revision", path, self.string),
            trust_remote_code=bool(self.optional(entries, "trust_remote_code", path, self.boolean)),
        )

    def location(self, source: str, name: str, key: yaml.Node, entries: _Entries, path: str) -> str:
        if source in ("embedded", "preset"):
            field, known = ("fixture", EMBEDDED) if source == "embedded" else ("preset", PRESETS)
            node, where = key, path
            if field in entries:
                node, where = entries[field][1], f"{path}.{field}"
                name = self.string(node, where)
            if name not in known:
                label = "embedded fixture" if source == "embedded" else "preset"
                self.fail(node, where, _unknown(label, name, known))
            return name
        field = "path" if source == "local" else "repo"
        if field not in entries:
            self.fail(entries["source"][0], path, f"source {source!r} needs the key {field!r}")
        node, where = entries[field][1], f"{path}.{field}"
        if source == "local":
            value = self.string(node, where, "a folder path")
            return self.folder(node, where, value)
        value = self.string(node, where, 'a Hub repo id like "gpt2" or "org/name"')
        if not _REPO_RE.fullmatch(value):
            self.fail(node, where, f"invalid Hub repo id {value!r}")
        return value

    # ---- scenario axes and rules

    def axes(self, pair: tuple[yaml.Node, yaml.Node] | None, path: str) -> Axes:
        if pair is None or _is_null(pair[1]):
            return Axes()
        entries = self.mapping(pair[1], path, _SCENARIO_KEYS)
        return Axes(
            low_cpu_mem_usage=self.values(entries, "low_cpu_mem_usage", path, self.lcmu),
            device_map=self.values(entries, "device_map", path, self.device_map),
            dtype=self.values(entries, "dtype", path, self.dtype),
            checkpoint_format=self.values(entries, "checkpoint_format", path, self.fmt),
            max_new_tokens=self.optional(entries, "max_new_tokens", path, self.integer),
        )

    def lcmu(self, node: yaml.Node, path: str) -> bool | None:
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _BOOL:
                return self.construct(node, path, _CONSTRUCT.construct_yaml_bool)
            if node.tag == _STR and node.value == "omit":
                return None
        raise self.error(node, path, f"expected omit, true or false, got {_got(node)}")

    def device_map(self, node: yaml.Node, path: str) -> str | None:
        if _is_null(node) or (
            isinstance(node, yaml.ScalarNode) and node.tag == _STR and node.value == "none"
        ):
            return None
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR and node.value in DEVICE_MAPS:
            return str(node.value)
        raise self.error(node, path, f"expected none, {', '.join(DEVICE_MAPS)}, got {_got(node)}")

    def dtype(self, node: yaml.Node, path: str) -> str:
        return self.choice(node, path, DTYPES)

    def fmt(self, node: yaml.Node, path: str) -> str:
        return self.choice(node, path, CHECKPOINT_FORMATS)

    def reference(
        self, what: str, known: Sequence[str], selected: tuple[str, Sequence[str]] | None = None
    ) -> Callable[[yaml.Node, str], str]:
        """A parser for a stack/model id: one of `known` and, if given, of (scope, ids)."""

        def parse(node: yaml.Node, path: str) -> str:
            value = self.string(node, path, f"a {what} id")
            if value not in known:
                self.fail(node, path, _unknown(what, value, known))
            if selected is not None and value not in selected[1]:
                scope, ids = selected
                problem = (
                    f"{what} {value!r} is not selected by {scope} (selected: {', '.join(ids)})"
                )
                self.fail(node, path, problem)
            return value

        return parse

    def rules(
        self,
        pair: tuple[yaml.Node, yaml.Node] | None,
        path: str,
        refs: tuple[Callable[[yaml.Node, str], str], Callable[[yaml.Node, str], str]],
        *,
        include: bool,
    ) -> tuple[Rule, ...]:
        """include/exclude entries; `refs` parse (and check) the stack and model ids."""
        if pair is None or _is_null(pair[1]):
            return ()
        stack_ref, model_ref = refs
        rules: list[Rule] = []
        for i, node in enumerate(self.sequence(pair[1], path)):
            where = f"{path}[{i}]"
            entries = self.mapping(node, where, _RULE_KEYS)
            if not entries:
                keys = ", ".join(_RULE_KEYS)
                self.fail(node, where, f"an empty rule matches every cell; give some of: {keys}")
            missing = [key for key in ("model", *AXES) if key not in entries]
            if include and missing:
                problem = "an include rule needs model and every scenario axis"
                self.fail(node, where, f"{problem} (missing: {', '.join(missing)})")
            rules.append(
                Rule(
                    stack=self.values(entries, "stack", where, stack_ref),
                    model=self.values(entries, "model", where, model_ref),
                    low_cpu_mem_usage=self.values(entries, "low_cpu_mem_usage", where, self.lcmu),
                    device_map=self.values(entries, "device_map", where, self.device_map),
                    dtype=self.values(entries, "dtype", where, self.dtype),
                    checkpoint_format=self.values(entries, "checkpoint_format", where, self.fmt),
                )
            )
        return tuple(rules)

    # ---- profiles

    def profiles(
        self, node: yaml.Node, stack_ids: Sequence[str], model_ids: Sequence[str]
    ) -> tuple[dict[str, Profile], dict[str, yaml.Node]]:
        entries = self.mapping(node, "profiles")
        for name in PROFILES_REQUIRED:
            if name not in entries:
                self.fail(node, "profiles", f"missing required profile {name!r}")
        profiles: dict[str, Profile] = {}
        keys: dict[str, yaml.Node] = {}
        for name, (key, value) in entries.items():
            profiles[name] = self.profile(name, key, value, stack_ids, model_ids)
            keys[name] = key
        return profiles, keys

    def profile(
        self,
        name: str,
        key: yaml.Node,
        node: yaml.Node,
        stack_ids: Sequence[str],
        model_ids: Sequence[str],
    ) -> Profile:
        path = f"profiles.{name}"
        if not _ID_RE.fullmatch(name):
            self.fail(key, path, f"invalid profile name {name!r}")
        entries = {} if _is_null(node) else self.mapping(node, path, _PROFILE_KEYS)
        for list_key in ("models", "stacks"):
            if list_key in entries:
                self.sequence(entries[list_key][1], f"{path}.{list_key}")
        models = self.values(entries, "models", path, self.reference("model", model_ids))
        stacks = self.values(entries, "stacks", path, self.reference("stack", stack_ids))
        refs = (self.reference("stack", stack_ids), self.reference("model", model_ids))
        # An include rule may only add what the profile selects: a rule naming another
        # model would otherwise be silently ignored.
        scope = f"profile {name!r}"
        include_refs = (
            self.reference("stack", stack_ids, (scope, stacks)) if stacks else refs[0],
            self.reference("model", model_ids, (scope, models)) if models else refs[1],
        )
        return Profile(
            name=name,
            models=models,
            stacks=stacks,
            axes=self.axes(entries.get("scenarios"), f"{path}.scenarios"),
            repeats=self.optional(entries, "repeats", path, self.integer),
            include=self.rules(
                entries.get("include"), f"{path}.include", include_refs, include=True
            ),
            exclude=self.rules(entries.get("exclude"), f"{path}.exclude", refs, include=False),
        )
