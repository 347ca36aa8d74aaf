"""Fuzzing matrix.yaml: malformed files, each one MatrixError line, exit code 2 from the CLI.

Every kind of mistake in `KINDS` starts from the real matrix.yaml, its structure (dumped
back with PyYAML) or its text (comments kept), and breaks one thing; hypothesis draws which
stack, model, profile, key and bad value. Whatever it draws, `harness.config.matrix.load` must raise
`MatrixError` (nothing else may escape) whose text is one line,
``<file>:<line>: <key.path>: <problem>``, with the line inside the offending key or value and
the key path naming it (``YAML syntax error`` in its place for text YAML cannot parse).
A few examples go through the real command line, `python -m harness`, as do bad arguments.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from harness import usage
from harness.commands import main
from harness.config import fields, matrix, models
from harness.config.matrix import MatrixError, load

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from harness.config.entry import Entry

REPO = Path(__file__).resolve().parents[2]
BASE_TEXT = (REPO / "matrix.yaml").read_text(encoding="utf-8")
BASE: dict[str, Any] = yaml.safe_load(BASE_TEXT)
STACK_COUNT = len(BASE["stacks"])
MODEL_IDS = list(BASE["models"])
PROFILE_NAMES = list(BASE["profiles"])
STACK_IDS = [stack.id for stack in load(REPO / "matrix.yaml").stacks]
RULE_AXES = {  # a complete include rule, less its model
    "low_cpu_mem_usage": "omit",
    "device_map": "none",
    "dtype": "float32",
    "checkpoint_format": "safetensors",
}
AXIS_VALUES: dict[str, tuple[object, ...]] = {
    "low_cpu_mem_usage": ("omit", True, False),
    "device_map": ("none", *matrix.DEVICE_MAPS),
    "dtype": matrix.DTYPES,
    "checkpoint_format": matrix.CHECKPOINT_FORMATS,
}
HUB_MODEL = {"source": "hub", "repo": "gpt2", "prompts": ["hi"]}
LOCAL_MODEL = {"source": "local", "path": "checkpoints/m", "prompts": ["hi"]}


def fields_of(entry: type[Entry]) -> tuple[str, ...]:
    return tuple(entry.model_fields)


def fast(examples: int) -> settings:
    """Few examples, no deadline (a subprocess is slow), nothing saved in .hypothesis/."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# --------------------------------------------------------------------------- a case


@dataclass(frozen=True)
class Case:
    """One malformed file and what its error must say."""

    text: str | bytes
    path: str | None  # the key path the message names; None: a YAML syntax error; or ANY_KEY_PATH
    lines: tuple[int, int]  # the reported line lies in this range (1-based, inclusive)
    fragment: str = ""  # the problem must contain this
    exact: bool = False  # the path must be exactly `path`, not a key or item below it


ANY_KEY_PATH = "<any key path, or a YAML syntax error>"


def dotted(at: tuple[str | int, ...]) -> str:
    if not at:
        return "(top level)"
    out = ""
    for step in at:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def dump(doc: object) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=10_000)


def node_at(text: str, at: tuple[str | int, ...]) -> tuple[yaml.Node | None, yaml.Node]:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert node is not None
    key: yaml.Node | None = None
    for step in at:
        if isinstance(step, int):
            key, node = None, node.value[step]
        else:
            key, node = next((k, v) for k, v in node.value if k.value == step)
    return key, node


def span(text: str, at: tuple[str | int, ...]) -> tuple[int, int]:
    """The lines from the key at `at` to the end of its value."""
    key, node = node_at(text, at)
    return (key or node).start_mark.line + 1, node.end_mark.line + 1


def structural(
    doc: object,
    at: tuple[str | int, ...],
    fragment: str = "",
    *,
    path: str | None = None,
    exact: bool = False,
) -> Case:
    """`doc` dumped; the error is at `at` (or inside it) and names `path` (default: `at`)."""
    text = dump(doc)
    return Case(text, dotted(at) if path is None else path, span(text, at), fragment, exact)


def last_line(text: str) -> int:
    return text.count("\n") + 1


def syntax(text: str, first_line: int, fragment: str = "") -> Case:
    """A YAML syntax error found on `first_line` or after it (the parser reads on)."""
    return Case(text, None, (first_line, last_line(text)), fragment)


# --------------------------------------------------------------------------- drawing


def fresh() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def stack_index(data: st.DataObject) -> int:
    return data.draw(st.integers(0, STACK_COUNT - 1), label="stack index")


def model_id(data: st.DataObject) -> str:
    return str(data.draw(st.sampled_from(MODEL_IDS), label="model"))


def profile_name(data: st.DataObject) -> str:
    return str(data.draw(st.sampled_from(PROFILE_NAMES), label="profile"))


def selected_models(profile: str) -> list[str]:
    return list(BASE["profiles"][profile].get("models") or MODEL_IDS)


def put(doc: dict[str, Any], at: tuple[str | int, ...], value: object) -> None:
    node: Any = doc
    for step in at[:-1]:
        if isinstance(step, str) and node.get(step) is None:
            node[step] = {}
        node = node[step]
    node[at[-1]] = value


def rename_key(mapping: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return {(new if k == old else k): v for k, v in mapping.items()}


def with_model(doc: dict[str, Any], name: str, entry: dict[str, Any]) -> dict[str, Any]:
    added: dict[str, Any] = copy.deepcopy(entry)
    doc["models"][name] = added
    return added


def slot(data: st.DataObject, templates: Sequence[tuple[str | int, ...]]) -> tuple[str | int, ...]:
    """A key path, placeholders drawn: <i> a stack index, <m> a model id, <p> a profile."""
    template = data.draw(st.sampled_from(templates), label="slot")
    out: list[str | int] = []
    for step in template:
        if step == "<i>":
            out.append(stack_index(data))
        elif step == "<m>":
            out.append(model_id(data))
        elif step == "<p>":
            out.append(profile_name(data))
        else:
            out.append(step)
    return tuple(out)


SCALARS = st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=8))


def nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(leaves, max_size=3), st.dictionaries(st.text(max_size=6), leaves, max_size=3)
    )


NOT_STRING = st.one_of(st.integers(), st.floats(), st.booleans(), nested(SCALARS))
NOT_INT = st.one_of(st.floats(), st.text(max_size=8), nested(SCALARS))  # bools: a kind of their own
NOT_NUMBER = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    nested(SCALARS),
    st.integers(max_value=0),
    st.floats().filter(lambda f: not (f > 0 and math.isfinite(f))),
)
NOT_BOOL = st.one_of(st.integers(), st.floats(), st.text(max_size=8), nested(SCALARS))
NOT_LIST = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.text(max_size=8),
    st.dictionaries(st.text(max_size=6), SCALARS, max_size=3),
)
NOT_MAPPING = st.one_of(
    st.integers(), st.floats(), st.booleans(), st.text(max_size=8), st.lists(SCALARS, max_size=3)
)
VALID_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,12}", fullmatch=True)
# Any text at all as a key: quotes, newlines, line separators, astral characters...
ANY_KEY = st.text(max_size=12).filter(lambda k: k != "<<")  # `<<` is YAML's merge key

INT_SLOTS = [
    ("settings", "repeats"),
    ("settings", "max_new_tokens"),
    ("scenarios", "max_new_tokens"),
    ("profiles", "<p>", "repeats"),
    ("profiles", "<p>", "scenarios", "max_new_tokens"),
]
NUMBER_SLOTS = [("settings", "timeout_s")] + [
    ("settings", "golden_tolerance", d) for d in matrix.DTYPES
]


def plain_scalar(raw: str) -> bool:
    """Whether `raw` written after `key: ` is one scalar (not, say, a YAML syntax error)."""
    try:
        node = yaml.compose(f"k: {raw}\n", Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return False
    return isinstance(node, yaml.MappingNode) and isinstance(node.value[0][1], yaml.ScalarNode)


def scalar_is(raw: str, *, number: bool) -> bool:
    """Whether the plain YAML scalar `raw` is a valid positive integer (or finite number)."""
    try:
        value = yaml.safe_load(f"k: {raw}\n")["k"]
    except (yaml.YAMLError, ValueError, KeyError, IndexError, OverflowError):
        return False
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float):
        return number and math.isfinite(value) and value > 0
    if number and value.bit_length() > 1024:  # more than a float holds
        return False
    return value > 0


# Text-level edits keep the real file's comments and layout: a scalar's character span comes
# from the node tree of the real text.
def _leaves(node: yaml.Node, at: tuple[str | int, ...]) -> dict[tuple[str | int, ...], yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        out: dict[tuple[str | int, ...], yaml.Node] = {}
        for key, value in node.value:
            out.update(_leaves(value, (*at, key.value)))
        return out
    if isinstance(node, yaml.SequenceNode):
        out = {}
        for i, item in enumerate(node.value):
            out.update(_leaves(item, (*at, i)))
        return out
    return {at: node}


BASE_ROOT = yaml.compose(BASE_TEXT, Loader=yaml.SafeLoader)
assert BASE_ROOT is not None
BASE_SCALARS = _leaves(BASE_ROOT, ())
BASE_LINES = BASE_TEXT.splitlines(keepends=True)


def replace_scalar(at: tuple[str | int, ...], raw: str) -> tuple[str, int]:
    """The real text with the scalar at `at` replaced by `raw`; and that scalar's line."""
    node = BASE_SCALARS[at]
    text = BASE_TEXT[: node.start_mark.index] + raw + BASE_TEXT[node.end_mark.index :]
    return text, node.start_mark.line + 1


def code_lines() -> list[int]:
    """Indexes of lines that hold YAML, not comments or blanks."""
    return [
        i for i, line in enumerate(BASE_LINES) if line.strip() and not line.lstrip().startswith("#")
    ]


def code(line: str) -> str:
    return line.split("#", 1)[0].rstrip()


def edit_line(i: int, new: str) -> str:
    return "".join([*BASE_LINES[:i], new, *BASE_LINES[i + 1 :]])


def insert_line(i: int, new: str) -> str:
    return "".join([*BASE_LINES[:i], new, *BASE_LINES[i:]])


def section(name: str) -> tuple[int, int]:
    """Line indexes [start, end) of a top-level section of the real text, its key line first."""
    start = next(i for i, line in enumerate(BASE_LINES) if line.startswith(f"{name}:"))
    end = next(
        (
            i
            for i in range(start + 1, len(BASE_LINES))
            if BASE_LINES[i][:1] not in ("", " ", "#", "\n")
        ),
        len(BASE_LINES),
    )
    return start, end


# --------------------------------------------------------------------------- the kinds

KINDS: list[tuple[str, Callable[[st.DataObject], Case]]] = []


def kind(name: str) -> Callable[[Callable[[st.DataObject], Case]], Callable[[st.DataObject], Case]]:
    def register(fn: Callable[[st.DataObject], Case]) -> Callable[[st.DataObject], Case]:
        KINDS.append((name, fn))
        return fn

    return register


# ---- wrong types


@kind("string key: wrong type")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    keys = ("python", "transformers", "torch", "accelerate", "id", "index_url", "torch_backend")
    templates = [("stacks", "<i>", k) for k in keys]
    at = slot(data, [*templates, ("settings", "mode"), ("models", "<m>", "source")])
    put(doc, at, data.draw(NOT_STRING, label="value"))
    return structural(doc, at)


@kind("string key of a hub or local model: wrong type")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    source, key = data.draw(
        st.sampled_from([("hub", "repo"), ("hub", "revision"), ("local", "path")]), label="key"
    )
    entry = with_model(doc, "extra", HUB_MODEL if source == "hub" else LOCAL_MODEL)
    entry[key] = data.draw(NOT_STRING, label="value")
    return structural(doc, ("models", "extra", key))


@kind("unquoted version: a YAML float")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(
        data, [("stacks", "<i>", k) for k in ("python", "transformers", "torch", "accelerate")]
    )
    put(doc, at, data.draw(st.floats(0, 100), label="float"))
    return structural(doc, at, "a YAML float); quote it")


@kind("list item: wrong type")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(
        data,
        [
            ("models", "<m>", "prompts"),
            ("stacks", "<i>", "pins"),
            ("stacks", "<i>", "find_links"),
            ("profiles", "<p>", "models"),
            ("profiles", "<p>", "stacks"),
            ("scenarios", "dtype"),
            ("scenarios", "checkpoint_format"),
            ("scenarios", "device_map"),
        ],
    )
    bad = data.draw(NOT_STRING, label="item")
    put(doc, at, [bad])
    return structural(doc, at)


@kind("low_cpu_mem_usage: neither omit nor a boolean")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(data, [("scenarios",), ("profiles", "<p>", "scenarios")])
    bad = data.draw(
        st.one_of(st.integers(), st.floats(), st.text(max_size=8).filter(lambda t: t != "omit")),
        label="value",
    )
    as_list = data.draw(st.booleans(), label="in a list")
    put(doc, (*at, "low_cpu_mem_usage"), ["omit", bad] if as_list else bad)
    return structural(doc, (*at, "low_cpu_mem_usage"))


@kind("integer key: wrong type")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(data, INT_SLOTS)
    put(doc, at, data.draw(NOT_INT, label="value"))
    return structural(doc, at)


@kind("integer key: a boolean")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(data, INT_SLOTS)
    put(doc, at, data.draw(st.booleans(), label="value"))
    return structural(doc, at, "(a YAML boolean)")


@kind("integer key: zero or negative")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(data, INT_SLOTS)
    put(doc, at, data.draw(st.integers(max_value=0), label="value"))
    return structural(doc, at, "must be positive")


@kind("number key: wrong type, zero, negative, inf or nan")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(data, NUMBER_SLOTS)
    put(doc, at, data.draw(NOT_NUMBER, label="value"))
    return structural(doc, at)


@kind("trust_remote_code: not a boolean")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    entry = with_model(doc, "extra", data.draw(st.sampled_from([HUB_MODEL, LOCAL_MODEL])))
    entry["trust_remote_code"] = data.draw(NOT_BOOL, label="value")
    return structural(doc, ("models", "extra", "trust_remote_code"))


@kind("list key: not a list")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(
        data,
        [
            ("stacks",),
            ("models", "<m>", "prompts"),
            ("profiles", "<p>", "models"),
            ("profiles", "<p>", "stacks"),
            ("include",),
            ("exclude",),
            ("profiles", "<p>", "include"),
            ("profiles", "<p>", "exclude"),
        ],
    )
    put(doc, at, data.draw(NOT_LIST, label="value"))
    return structural(doc, at, "expected a list")


@kind("mapping key: not a mapping")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(
        data,
        [
            ("settings",),
            ("models",),
            ("profiles",),
            ("scenarios",),
            ("models", "<m>"),
            ("profiles", "<p>"),
            ("profiles", "<p>", "scenarios"),
            ("settings", "golden_tolerance"),
            ("exclude", 0),
            ("profiles", "<p>", "include", 0),
        ],
    )
    value = data.draw(NOT_MAPPING, label="value")
    if at[-1] == 0:
        put(doc, at[:-1], [value])
    else:
        put(doc, at, value)
    return structural(doc, at, "expected a mapping")


@kind("required key: null")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(
        data,
        [
            ("stacks", "<i>", "python"),
            ("stacks", "<i>", "transformers"),
            ("stacks", "<i>", "torch"),
            ("models", "<m>", "source"),
            ("models", "<m>", "prompts"),
            ("models", "<m>"),
            ("stacks",),
            ("models",),
            ("profiles",),
        ],
    )
    put(doc, at, None)
    return structural(doc, at, "nothing (null)")


# ---- unknown keys


def unknown_key(
    data: st.DataObject, doc: dict[str, Any], at: tuple[str | int, ...], allowed: tuple[str, ...]
) -> Case:
    key = data.draw(ANY_KEY.filter(lambda k: k not in allowed), label="unknown key")
    put(doc, (*at, key), data.draw(SCALARS, label="its value"))
    return structural(doc, (*at, key), "unknown key", exact=True)


@kind("unknown key: top level")
def _(data: st.DataObject) -> Case:
    return unknown_key(data, fresh(), (), fields_of(models.MatrixDocument))


@kind("unknown key: settings")
def _(data: st.DataObject) -> Case:
    return unknown_key(data, fresh(), ("settings",), fields_of(models.SettingsEntry))


@kind("unknown key: settings.golden_tolerance")
def _(data: st.DataObject) -> Case:
    return unknown_key(data, fresh(), ("settings", "golden_tolerance"), matrix.DTYPES)


@kind("unknown key: stacks[i]")
def _(data: st.DataObject) -> Case:
    return unknown_key(data, fresh(), ("stacks", stack_index(data)), fields_of(models.StackEntry))


@kind("unknown key: models.<id>")
def _(data: st.DataObject) -> Case:
    return unknown_key(data, fresh(), ("models", model_id(data)), fields_of(models.ModelEntry))


@kind("unknown key: scenarios")
def _(data: st.DataObject) -> Case:
    return unknown_key(data, fresh(), ("scenarios",), fields_of(models.AxesEntry))


@kind("unknown key: profiles.<name>")
def _(data: st.DataObject) -> Case:
    return unknown_key(
        data, fresh(), ("profiles", profile_name(data)), fields_of(models.ProfileEntry)
    )


@kind("unknown key: profiles.<name>.scenarios")
def _(data: st.DataObject) -> Case:
    at = ("profiles", profile_name(data), "scenarios")
    return unknown_key(data, fresh(), at, fields_of(models.AxesEntry))


@kind("unknown key: an include or exclude rule")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    where = slot(data, [("include",), ("exclude",), ("profiles", "<p>", "include"), ("profiles", "<p>", "exclude")])  # fmt: skip
    put(doc, where, [{"model": "tiny-gpt2"}])
    return unknown_key(data, doc, (*where, 0), fields_of(models.RuleEntry))


@kind("model key not allowed for its source")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    name = model_id(data)
    source = BASE["models"][name]["source"]
    allowed = models._SOURCE_KEYS[source]
    key = data.draw(st.sampled_from([k for k in fields_of(models.ModelEntry) if k not in allowed]))
    # A value of the key's own type: the source rule is what must fail, not the type.
    doc["models"][name][key] = {"trust_remote_code": True, "allow_unsafe_pickle": True,
                                "shards": 2}.get(key, "x")  # fmt: skip
    return structural(doc, ("models", name, key), "not allowed for source", exact=True)


# ---- duplicates


@kind("duplicate stack id")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    first = stack_index(data)
    how = data.draw(st.sampled_from(["copy", "same explicit id", "differs in accelerate only"]))
    if how == "same explicit id":
        second = data.draw(st.integers(0, STACK_COUNT - 1).filter(lambda i: i != first))
        first, second = sorted((first, second))
        same = data.draw(VALID_ID, label="id")
        doc["stacks"][first]["id"] = doc["stacks"][second]["id"] = same
        return structural(doc, ("stacks", second, "id"), "duplicate stack id")
    copied = copy.deepcopy(doc["stacks"][first])
    if how == "differs in accelerate only":
        copied["accelerate"] = "0.99.0"
    second = data.draw(st.integers(first + 1, STACK_COUNT), label="copy at")
    doc["stacks"].insert(second, copied)
    return structural(
        doc, ("stacks", second), "duplicate stack id", path=f"stacks[{second}].id", exact=True
    )


@kind("duplicate model id (a repeated YAML key)")
def _(data: st.DataObject) -> Case:
    start, end = section("models")
    entries = [
        i for i in range(start + 1, end) if re.match(r"  [A-Za-z0-9][^:\s]*:", BASE_LINES[i])
    ]
    first = data.draw(st.sampled_from(entries), label="first line index")
    name = BASE_LINES[first].split(":", 1)[0].strip()
    at = data.draw(st.sampled_from([*(i for i in entries if i > first), end]), label="insert at")
    text = insert_line(at, f"  {name}: {{source: preset, prompts: [again]}}\n")
    return Case(text, f"models.{name}", (at + 1, at + 1), f"first at line {first + 1}", exact=True)


@kind("duplicate key in a block mapping")
def _(data: st.DataObject) -> Case:
    where = data.draw(st.sampled_from(["settings", "a profile", "top level"]))
    if where == "top level":
        key = data.draw(st.sampled_from(list(BASE)), label="section")
        text = BASE_TEXT + f"{key}: {{}}\n"
        line = last_line(text) - 1
        return Case(text, key, (line, line), "duplicate key", exact=True)
    if where == "settings":
        start, end = section("settings")
        prefix = "settings"
    else:
        name = profile_name(data)
        start = BASE_LINES.index(f"  {name}:\n")
        end = next(
            (i for i in range(start + 1, len(BASE_LINES)) if not BASE_LINES[i].startswith("    ")),
            len(BASE_LINES),
        )
        prefix = f"profiles.{name}"
    indent = "  " if where == "settings" else "    "
    keys = [
        i
        for i in range(start + 1, end)
        if BASE_LINES[i].startswith(indent) and BASE_LINES[i][len(indent)] != " "
    ]
    first = data.draw(st.sampled_from(keys), label="line index copied")
    at = data.draw(st.integers(first + 1, keys[-1] + 1), label="insert at")
    key = BASE_LINES[first].split(":", 1)[0].strip()
    text = insert_line(at, BASE_LINES[first])
    return Case(text, f"{prefix}.{key}", (at + 1, at + 1), "duplicate key", exact=True)


@kind("duplicate key in a flow mapping")
def _(data: st.DataObject) -> Case:
    i = stack_index(data)
    line_no = next(n for n in code_lines() if BASE_LINES[n].lstrip().startswith("- {python:"))
    line_no += i
    key = data.draw(st.sampled_from(["python", "transformers", "torch", "accelerate"]))
    line = BASE_LINES[line_no]
    cut = code(line).rfind("}")
    new = line[:cut] + f', {key}: "1.0"' + line[cut:]
    return Case(edit_line(line_no, new), f"stacks[{i}].{key}", (line_no + 1, line_no + 1), "duplicate key", exact=True)  # fmt: skip


@kind("duplicate axis value or selected id")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    axis = data.draw(st.sampled_from([*AXIS_VALUES, "models"]), label="key")
    if axis == "models":
        name = profile_name(data)
        chosen = selected_models(name)
        doc["profiles"][name]["models"] = [*chosen, data.draw(st.sampled_from(chosen))]
        return structural(doc, ("profiles", name, "models"), "duplicate value")
    values = list(doc["scenarios"][axis])
    doc["scenarios"][axis] = [*values, data.draw(st.sampled_from(values), label="repeated")]
    return structural(doc, ("scenarios", axis), "duplicate value")


# ---- axes


@kind("empty axis or empty selection")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    axis = data.draw(st.sampled_from(list(AXIS_VALUES)), label="axis")
    where = data.draw(st.sampled_from(["scenarios", "profile scenarios", "rule", "profile models", "profile stacks"]))  # fmt: skip
    if where == "scenarios":
        at: tuple[str | int, ...] = ("scenarios", axis)
    elif where == "profile scenarios":
        at = ("profiles", profile_name(data), "scenarios", axis)
    elif where == "rule":
        doc["exclude"] = [{"model": "gpt2-1.5b"}]
        at = ("exclude", 0, axis)
    else:
        at = ("profiles", profile_name(data), where.split()[1])
    put(doc, at, [])
    return structural(doc, at, "must not be empty", exact=True)


@kind("invalid axis value")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    axis = data.draw(st.sampled_from(list(AXIS_VALUES)), label="axis")
    valid = {v for v in AXIS_VALUES[axis] if isinstance(v, str)}
    bad = data.draw(
        st.one_of(
            st.sampled_from(["float64", "fp16", "gpu", "yes", "no", "None", "", "pt", "onnx"]),
            st.text(max_size=10),
        ).filter(lambda t: t not in valid),
        label="value",
    )
    where = data.draw(st.sampled_from(["scenarios", "profile", "rule"]))
    if where == "scenarios":
        at: tuple[str | int, ...] = ("scenarios", axis)
    elif where == "profile":
        at = ("profiles", profile_name(data), "scenarios", axis)
    else:
        doc["exclude"] = [{"model": "gpt2-1.5b"}]
        at = ("exclude", 0, axis)
    put(doc, at, data.draw(st.sampled_from([bad, [bad]]), label="as written"))
    return structural(doc, at)


# ---- versions and requirements

BAD_VERSIONS = ["4.x", ">=4", "latest", "", "1..2", "~=4.46", "==4.46.3", "4.46.3,<5", " 4.46.3",
                "4.46.3 ", "^4.46", "*", "4.*", "4.46.3-", "v", "4.46.3;", "4 .46", "4.46 || 5",
                "main", "4.46.3.post-x", "=4.46.3", "!=4", "<5", "4,46"]  # fmt: skip


def invalid_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return True
    return False


@kind("impossible version")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    at = slot(data, [("stacks", "<i>", k) for k in ("transformers", "torch", "accelerate")])
    bad = data.draw(
        st.one_of(st.sampled_from(BAD_VERSIONS), st.text(max_size=10).filter(invalid_version)),
        label="version",
    )
    put(doc, at, bad)
    return structural(doc, at, exact=True)


BAD_PYTHONS = ["3.7", "2.7", "3", "3.15", "3.11.7", "py3.11", "4.0", "3.x", "", "latest",
               ">=3.11", "3,11", "3.011", " 3.11", "python3"]  # fmt: skip


@kind("bad python version")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    i = stack_index(data)
    bad = data.draw(
        st.one_of(
            st.sampled_from(BAD_PYTHONS),
            st.integers(0, 7).map(lambda n: f"3.{n}"),
            st.integers(15, 99).map(lambda n: f"3.{n}"),
            st.tuples(st.integers(0, 9).filter(lambda n: n != 3), st.integers(0, 20)).map(
                lambda t: f"{t[0]}.{t[1]}"
            ),
        ),
        label="python",
    )
    doc["stacks"][i]["python"] = bad
    return structural(doc, ("stacks", i, "python"), exact=True)


BAD_PINS = ["numpy<<2", "numpy>=", "==1.0", "numpy 2", "numpy<2;;", "numpy[", "numpy @", "-e .",
            "numpy<2 or", "", "  ", "numpy; python_version <", "!numpy", "numpy==1.*.2",
            "numpy; (" * 3, "numpy ~= 1"]  # fmt: skip


def invalid_requirement(text: str) -> bool:
    try:
        Requirement(text)
    except InvalidRequirement:
        return True
    return False


@kind("bad requirement in pins")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    i = stack_index(data)
    bad = data.draw(
        st.one_of(st.sampled_from(BAD_PINS), st.text(max_size=12).filter(invalid_requirement)),
        label="pin",
    )
    doc["stacks"][i]["pins"] = data.draw(st.sampled_from([bad, ["numpy<2", bad]]), label="pins")
    return structural(doc, ("stacks", i, "pins"))


@kind("pin conflicting with the stack's own keys")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    i = stack_index(data)
    name = data.draw(
        st.sampled_from(["torch", "Torch", "transformers", "TRANSFORMERS", "accelerate"])
    )
    spec = data.draw(st.sampled_from(["", "==2.0", ">=1", "<5", "[extra]"]), label="specifier")
    doc["stacks"][i]["pins"] = [f"{name}{spec}"]
    return structural(doc, ("stacks", i, "pins"), "conflicts with")


@kind("bad index_url or torch_backend")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    i = stack_index(data)
    key = data.draw(st.sampled_from(["index_url", "torch_backend"]))
    if key == "index_url":
        pattern = fields.URL_RE
        fixed = ["pypi.org/simple", "not a url", "http//x", "://x", "https:// spaced"]
    else:
        pattern = fields.TORCH_BACKEND_RE
        fixed = ["cuda12", "gpu", "rocm", "cu", "CPU", "cu12.4", "metal"]
    bad = data.draw(
        st.one_of(st.sampled_from(fixed), st.text(max_size=10)).filter(
            lambda t: pattern.fullmatch(t) is None
        ),
        label="value",
    )
    doc["stacks"][i][key] = bad
    return structural(doc, ("stacks", i, key), exact=True)


@kind("invalid id, model id or profile name")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    bad = data.draw(
        st.one_of(
            st.sampled_from(["a/b", "has space", "-lead", ".hidden", "x:y", "é", "a\tb"]),
            ANY_KEY,
        ).filter(lambda t: fields.ID_RE.fullmatch(t) is None),
        label="id",
    )
    where = data.draw(st.sampled_from(["stack id", "model id", "profile name"]))
    if where == "stack id":
        i = stack_index(data)
        doc["stacks"][i]["id"] = bad
        return structural(doc, ("stacks", i, "id"), exact=True)
    if where == "model id":
        name = model_id(data)
        assume(bad not in MODEL_IDS)
        doc["models"] = rename_key(doc["models"], name, bad)
        return structural(doc, ("models", bad), "invalid model id", exact=True)
    assume(bad not in PROFILE_NAMES)
    doc["profiles"][bad] = {}
    return structural(doc, ("profiles", bad), "invalid profile name", exact=True)


# ---- YAML syntax

FLOW_LINES = [i for i in code_lines() if code(BASE_LINES[i]).endswith(("]", "}"))]
QUOTED_LINES = [i for i in code_lines() if '"' in code(BASE_LINES[i])]
INDENTED = [i for i in code_lines() if BASE_LINES[i].startswith(" ")]


@kind("YAML: unclosed bracket")
def _(data: st.DataObject) -> Case:
    i = data.draw(st.sampled_from(FLOW_LINES), label="line index")
    line = BASE_LINES[i]
    cut = len(code(line)) - 1
    return syntax(edit_line(i, line[:cut] + line[cut + 1 :]), i + 1)


@kind("YAML: extra closing bracket")
def _(data: st.DataObject) -> Case:
    i = data.draw(st.sampled_from(FLOW_LINES), label="line index")
    line = BASE_LINES[i]
    cut = len(code(line))
    extra = data.draw(st.sampled_from(["]", "}", "]]", "}]"]))
    return syntax(edit_line(i, line[:cut] + extra + line[cut:]), i + 1)


@kind("YAML: bad indentation")
def _(data: st.DataObject) -> Case:
    i = data.draw(st.sampled_from(code_lines()), label="line index")
    line = BASE_LINES[i]
    shift = data.draw(
        st.sampled_from([1, 2, 3, -1] if line.startswith(" ") else [1, 3]), label="shift"
    )
    text = edit_line(i, " " * shift + line if shift > 0 else line[-shift:])
    if shift == 2:  # on the 2-space grid: may still parse, as a key of another mapping
        return Case(text, ANY_KEY_PATH, (1, last_line(text)))
    return syntax(text, i + 1)  # off the grid: never valid YAML


@kind("YAML: tab in indentation")
def _(data: st.DataObject) -> Case:
    i = data.draw(st.sampled_from(INDENTED), label="line index")
    line = BASE_LINES[i]
    stripped = line.lstrip(" ")
    indent = len(line) - len(stripped)
    tabs = data.draw(st.sampled_from(["\t", "\t" * (indent // 2), " " * (indent - 1) + "\t"]))
    return syntax(edit_line(i, tabs + stripped), i + 1, "'\\t'")


@kind("YAML: unclosed quote")
def _(data: st.DataObject) -> Case:
    i = data.draw(st.sampled_from(QUOTED_LINES), label="line index")
    line = BASE_LINES[i]
    quotes = [n for n, ch in enumerate(code(line)) if ch == '"']
    cut = data.draw(st.sampled_from(quotes[1::2]), label="closing quote dropped")
    return syntax(edit_line(i, line[:cut] + line[cut + 1 :]), i + 1)


@kind("YAML: undefined alias")
def _(data: st.DataObject) -> Case:
    at = data.draw(st.sampled_from(sorted(BASE_SCALARS, key=str)), label="scalar")
    name = data.draw(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), label="alias")
    text, line = replace_scalar(at, f"*{name}")
    return Case(text, None, (line, line), "undefined alias")


# What YAML's reader refuses: C0 and C1 controls but tab, newline, CR and NEL; U+FFFE, U+FFFF.
NOT_YAML_CHARACTERS = [
    *(chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)),
    *(chr(c) for c in range(0x7F, 0xA0) if c != 0x85),
    "\ufffe",
    "\uffff",
]


@kind("YAML: a character YAML does not allow")
def _(data: st.DataObject) -> Case:
    bad = data.draw(st.sampled_from(NOT_YAML_CHARACTERS), label="character")
    i = data.draw(st.integers(0, len(BASE_LINES) - 1), label="line index")
    line = BASE_LINES[i]
    col = data.draw(st.integers(0, len(line) - 1), label="column")
    return Case(edit_line(i, line[:col] + bad + line[col:]), None, (i + 1, i + 1))


@kind("YAML: nesting deeper than the parser's recursion")
def _(data: st.DataObject) -> Case:
    depth = data.draw(st.integers(1000, 1200), label="depth")
    closed = data.draw(st.booleans(), label="closed")
    opener = data.draw(st.sampled_from(["[", "{a: "]))
    closer = "]" if opener == "[" else "}"
    value = opener * depth + (closer * depth if closed else "")
    at = data.draw(st.sampled_from([("settings", "repeats"), ("profiles", "smoke", "repeats")]))
    text, line = replace_scalar(at, value)
    return syntax(text, line)


@kind("YAML: key that is not a plain string")
def _(data: st.DataObject) -> Case:
    start, _end = section("settings")
    key = data.draw(st.sampled_from(["~", "null", "[a, b]", "{a: 1}"]), label="key")
    if key.startswith(("[", "{")):
        text = insert_line(start + 1, f"  ? {key}\n  : 1\n")
    else:
        text = insert_line(start + 1, f"  {key}: 1\n")
    return Case(text, "settings", (start + 2, start + 2), "keys must be plain strings", exact=True)


@kind("YAML: merge key without a mapping")
def _(data: st.DataObject) -> Case:
    start, _end = section("settings")
    value = data.draw(st.sampled_from(["5", "[1]", "x", "[{a: 1}, 2]"]), label="merged")
    text = insert_line(start + 1, f"  <<: {value}\n")
    return Case(text, "settings", (start + 2, start + 2), "merge key", exact=True)


@kind("YAML: merge keys (<<) chained deeper than the recursion")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    del doc["settings"]
    doc["exclude"] = []
    depth = data.draw(st.integers(1000, 1200), label="depth")
    chain = "".join(f"- &a{i} {{<<: *a{i - 1}}}\n" for i in range(1, depth))
    text = dump(doc).replace("exclude: []\n", "exclude:\n- &a0 {model: gpt2-1.5b}\n" + chain)
    text += f"settings: {{<<: *a{depth - 1}}}\n"
    # The first entry of the chain too deep in the file: the 100th link.
    return Case(text, "exclude[100]", (1, last_line(text)), "nested too deeply", exact=True)


BAD_NUMBERS = ["0x_", "0b_", "-0x_", "0b__", "+0x__", "1" + "0" * 5000, "1" + "0" * 400, "0",
               "-1", "0:0", "0.0", ".nan", "-.inf", ".inf", "0o7", "1e3", "1_", "0_", "1__0",
               "1:60", "1:6_0"]  # fmt: skip
NUMBER_SCALARS = [k for k in BASE_SCALARS if k[-1] in ("repeats", "timeout_s", "max_new_tokens")]


@kind("malformed YAML number (0x_, huge, sexagesimal...)")
def _(data: st.DataObject) -> Case:
    at = data.draw(st.sampled_from(NUMBER_SCALARS), label="key")
    raw = data.draw(
        st.one_of(
            st.sampled_from(BAD_NUMBERS),
            st.from_regex(r"[-+]?(0x|0b|0|\.|[1-9])[0-9_a-fA-F.:eE+-]{0,6}", fullmatch=True),
        ),
        label="raw scalar",
    )
    assume(plain_scalar(raw) and not scalar_is(raw, number=at[-1] == "timeout_s"))
    text, line = replace_scalar(at, raw)
    return Case(text, dotted(at), (line, line), exact=True)


@kind("explicit YAML tag on a value it cannot hold")
def _(data: st.DataObject) -> Case:
    targets = NUMBER_SCALARS + [k for k in BASE_SCALARS if "low_cpu_mem_usage" in k]
    at = data.draw(st.sampled_from(targets), label="key")
    tag = data.draw(st.sampled_from(["!!int", "!!float", "!!bool"]), label="tag")
    word = data.draw(
        st.one_of(
            st.sampled_from(["abc", "maybe", "0x", "1.2.3", "", "yes please", "--1"]),
            st.from_regex(r"[A-Za-z0-9_.]{1,8}", fullmatch=True),
        ),
        label="value",
    )
    raw = f'{tag} "{word}"'
    try:
        yaml.safe_load(f"k: {raw}\n")
    except (ValueError, KeyError, IndexError, OverflowError):
        pass
    else:
        assume(False)  # a well-formed tagged value: then it is only a type error elsewhere
    text, line = replace_scalar(at, raw)
    return Case(text, dotted(at[:-1] if isinstance(at[-1], int) else at), (line, line))


# ---- references

UNKNOWN_ID = VALID_ID.filter(lambda t: t not in MODEL_IDS and t not in STACK_IDS)


@kind("profile names a missing model")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    name = profile_name(data)
    missing = data.draw(UNKNOWN_ID, label="model id")
    doc["profiles"][name]["models"] = [*selected_models(name), missing]
    return structural(doc, ("profiles", name, "models"), "unknown model ")


@kind("profile names a missing stack")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    name = profile_name(data)
    doc["profiles"][name]["stacks"] = [data.draw(UNKNOWN_ID, label="stack id")]
    return structural(doc, ("profiles", name, "stacks"), "unknown stack ")


RULE_SECTIONS = [("include",), ("exclude",), ("profiles", "<p>", "include"), ("profiles", "<p>", "exclude")]  # fmt: skip


@kind("rule names an unknown model or stack")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    where = slot(data, RULE_SECTIONS)
    key = data.draw(st.sampled_from(["model", "stack"]), label="key")
    missing = data.draw(UNKNOWN_ID, label="id")
    rule: dict[str, Any] = {"model": "tiny-gpt2", **RULE_AXES}
    rule[key] = data.draw(st.sampled_from([missing, [missing]]), label="as written")
    put(doc, where, [rule])
    return structural(doc, (*where, 0, key), f"unknown {key} ")


@kind("include rule without model or an axis")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    where = slot(data, [("include",), ("profiles", "<p>", "include")])
    rule: dict[str, Any] = {"model": "tiny-gpt2", **RULE_AXES}
    dropped = data.draw(
        st.sets(st.sampled_from(list(rule)), min_size=1, max_size=len(rule) - 1), label="dropped"
    )
    put(doc, where, [{k: v for k, v in rule.items() if k not in dropped}])
    return structural(doc, (*where, 0), "needs model and the first four scenario axes", exact=True)


@kind("profile include names a model the profile does not select")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    narrow = [p for p in PROFILE_NAMES if set(selected_models(p)) != set(MODEL_IDS)]
    name = data.draw(st.sampled_from(narrow), label="profile")
    other = data.draw(st.sampled_from([m for m in MODEL_IDS if m not in selected_models(name)]))
    doc["profiles"][name]["include"] = [{"model": other, **RULE_AXES}]
    return structural(doc, ("profiles", name, "include", 0, "model"), "is not selected by")


@kind("empty rule")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    where = slot(data, RULE_SECTIONS)
    put(doc, where, [{}])
    return structural(doc, (*where, 0), "an empty rule", exact=True)


@kind("exclude rules remove every cell of a profile")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    name = profile_name(data)
    how = data.draw(st.sampled_from(["its models", "every stack", "its dtypes"]), label="by")
    if how == "its models":
        rule: dict[str, Any] = {"model": selected_models(name)}
    elif how == "every stack":
        rule = {"stack": STACK_IDS}
    else:
        rule = {"dtype": list(matrix.DTYPES)}
    doc["profiles"][name]["exclude"] = [rule]
    return structural(doc, ("profiles", name), "selects no cells", exact=True)


# ---- missing keys and empty sections


@kind("missing required top-level section")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    deleted = data.draw(st.sampled_from(["stacks", "models", "profiles"]), label="deleted")
    del doc[deleted]
    # Without stacks, sweeps alone may make a matrix: the problem is having neither.
    problem = (
        "must list at least one stack or sweep" if deleted == "stacks" else "missing required key"
    )
    return structural(doc, (), problem, exact=True)


@kind("missing required profile")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    del doc["profiles"][data.draw(st.sampled_from(matrix.PROFILES_REQUIRED), label="deleted")]
    return structural(doc, ("profiles",), "missing required profile", exact=True)


@kind("missing required stack key")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    i = stack_index(data)
    del doc["stacks"][i][data.draw(st.sampled_from(["python", "transformers", "torch"]))]
    return structural(doc, ("stacks", i), "missing required key", exact=True)


@kind("missing required model key")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    name = model_id(data)
    del doc["models"][name][data.draw(st.sampled_from(["source", "prompts"]))]
    return structural(doc, ("models", name), "missing required key", exact=True)


@kind("hub model without repo, local model without path")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    source = data.draw(st.sampled_from(["hub", "local"]), label="source")
    entry = with_model(doc, "extra", HUB_MODEL if source == "hub" else LOCAL_MODEL)
    del entry["repo" if source == "hub" else "path"]
    return structural(doc, ("models", "extra"), "needs the key", exact=True)


@kind("empty stacks or models")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    key = data.draw(st.sampled_from(["stacks", "models"]), label="section")
    doc[key] = [] if key == "stacks" else {}
    return structural(doc, (key,), "at least one", exact=True)


# ---- models


@kind("unknown source")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    name = model_id(data)
    bad = data.draw(
        st.one_of(st.sampled_from(["Hub", "huggingface", "file", "url"]), st.text(max_size=10))
        .filter(lambda t: t not in matrix.SOURCES),
        label="source",
    )  # fmt: skip
    doc["models"][name]["source"] = bad
    return structural(doc, ("models", name, "source"), exact=True)


@kind("unknown preset or embedded fixture")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    source = data.draw(st.sampled_from(["preset", "embedded"]), label="source")
    known = matrix.PRESETS if source == "preset" else matrix.EMBEDDED
    bad = data.draw(VALID_ID.filter(lambda t: t not in known), label="name")
    if data.draw(st.booleans(), label="as the model id"):
        assume(bad not in MODEL_IDS)
        doc["models"][bad] = {"source": source, "prompts": ["hi"]}
        return structural(doc, ("models", bad), "unknown", exact=True)
    key = "preset" if source == "preset" else "fixture"
    doc["models"]["extra"] = {"source": source, key: bad, "prompts": ["hi"]}
    return structural(doc, ("models", "extra", key), "unknown", exact=True)


@kind("empty prompts list")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    name = model_id(data)
    doc["models"][name]["prompts"] = []
    return structural(doc, ("models", name, "prompts"), "at least one prompt", exact=True)


@kind("blank prompt")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    name = model_id(data)
    blank = data.draw(st.text(alphabet=" \t\n", max_size=4), label="prompt")
    doc["models"][name]["prompts"].append(blank)
    return structural(doc, ("models", name, "prompts"), "empty string")


@kind("bad Hub repo id")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    bad = data.draw(
        st.one_of(st.sampled_from(["a/b/c", "has space", "-x", "org/", "/name"]), st.text(max_size=10))
        .filter(lambda t: t.strip() and fields.REPO_RE.fullmatch(t) is None),
        label="repo",
    )  # fmt: skip
    entry = with_model(doc, "extra", HUB_MODEL)
    entry["repo"] = bad
    return structural(doc, ("models", "extra", "repo"), "invalid Hub repo id", exact=True)


@kind("folder path that cannot be resolved")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    bad = data.draw(
        st.sampled_from(["~no-such-user-q9x/ckpt", "a\0b", "\0", "~no-such-user-q9x"]), label="path"
    )
    if data.draw(st.booleans(), label="find_links"):
        i = stack_index(data)
        doc["stacks"][i]["find_links"] = [bad]
        return structural(doc, ("stacks", i, "find_links"))
    entry = with_model(doc, "extra", LOCAL_MODEL)
    entry["path"] = bad
    return structural(doc, ("models", "extra", "path"), exact=True)


@kind("unknown settings.mode")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    bad = data.draw(
        st.one_of(st.sampled_from(["fork", "spawn", "Fresh", "forkserver "]), st.text(max_size=10))
        .filter(lambda t: t not in matrix.MODES),
        label="mode",
    )  # fmt: skip
    doc["settings"]["mode"] = bad
    return structural(doc, ("settings", "mode"), exact=True)


# ---- existing environments (install: false)

EXISTING = {"id": "system-env", "install": False, "python": "/usr/bin/python3"}


@kind("install: not a boolean")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    i = stack_index(data)
    doc["stacks"][i]["install"] = data.draw(NOT_BOOL, label="value")
    return structural(doc, ("stacks", i, "install"), exact=True)


@kind("existing environment: a key it cannot use, no id, a bad interpreter path")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    i = stack_index(data)
    stack = doc["stacks"][i] = dict(EXISTING)
    how = data.draw(st.sampled_from(["install-only key", "no id", "bad python"]), label="how")
    if how == "install-only key":
        keys = [k for k in fields_of(models.StackEntry) if k not in ("id", "install", "python")]
        key = data.draw(st.sampled_from(keys), label="key")
        stack[key] = "1.0"
        return structural(doc, ("stacks", i, key), "installs nothing", exact=True)
    if how == "no id":
        del stack["id"]
        return structural(doc, ("stacks", i), "needs an id", path=f"stacks[{i}].id", exact=True)
    bad = data.draw(
        st.one_of(
            st.sampled_from(["~no-such-user-q9x/bin/python", "bin/py\0thon", ""]), NOT_STRING
        ),
        label="python",
    )
    stack["python"] = bad
    return structural(doc, ("stacks", i, "python"), exact=True)


@fast(60)
@given(python=st.text(max_size=12).filter(lambda t: t.strip()))
@example(python="bin/py\x00thon")  # accepted until the control-character check
def test_existing_environment_python_path(workdir: Path, python: str) -> None:
    """An interpreter path is taken (made absolute) or refused in one line, never kept
    with a control character in it."""
    doc = fresh()
    doc["stacks"][0] = {**EXISTING, "python": python}
    file = workdir / "python.yaml"
    file.write_text(dump(doc), encoding="utf-8")
    bad = any(unicodedata.category(c).startswith("C") for c in python)
    try:
        stack = load(file).stacks[0]
    except MatrixError as exc:
        message = str(exc)
        assert message.splitlines() == [message], message
        assert ": stacks[0].python: " in message, message
        assert bad or python.startswith("~"), message
        return
    assert not bad, stack.python
    assert Path(stack.python).is_absolute()


# ---- compare (thresholds for `nox -s compare`)


@kind("unknown key: compare")
def _(data: st.DataObject) -> Case:
    return unknown_key(data, fresh(), ("compare",), fields_of(models.CompareEntry))


@kind("compare: bad threshold or fail_on")
def _(data: st.DataObject) -> Case:
    doc = fresh()
    key = data.draw(st.sampled_from(fields_of(models.CompareEntry)), label="key")
    if key in ("memory", "time", "alpha"):
        bad = NOT_NUMBER if key != "alpha" else st.one_of(NOT_NUMBER, st.floats(min_value=1))
    elif key == "min_repeats":
        bad = st.one_of(NOT_INT, st.booleans(), st.integers(max_value=0))
    elif key == "memory_floor_mb":
        bad = st.one_of(
            st.text(max_size=8),
            st.booleans(),
            nested(SCALARS),
            st.integers(max_value=-1),
            st.floats().filter(lambda f: not (f >= 0 and math.isfinite(f))),
        )
    else:
        word = st.text(max_size=8).filter(lambda t: t not in matrix.FAIL_ON_CHOICES)
        bad = st.one_of(word, st.lists(word, min_size=1, max_size=2), NOT_STRING.filter(bool))
    put(doc, ("compare", key), data.draw(bad, label="value"))
    return structural(doc, ("compare", key))


# ---- the document itself


@kind("document is not a mapping")
def _(data: st.DataObject) -> Case:
    header = "".join(line for line in BASE_LINES[:3] if line.startswith("#"))
    body = data.draw(
        st.one_of(
            st.just(""),
            st.just("---\n"),
            st.just("~\n"),
            st.just("--- |\n  text\n"),
            st.builds(dump, st.just([BASE])),
            st.builds(dump, st.just(BASE["stacks"])),
            st.builds(dump, SCALARS),
            st.builds(dump, st.lists(SCALARS, max_size=3)),
        ),
        label="document",
    )
    text = data.draw(st.sampled_from([body, header + body]), label="with comments")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    line = 1 if root is None else root.start_mark.line + 1
    return Case(text, "(top level)", (line, line), exact=True)


@kind("file is not UTF-8")
def _(data: st.DataObject) -> Case:
    raw = BASE_TEXT.encode()
    bad = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\x80", b"\xed\xa0\x80"]))
    at = data.draw(st.integers(0, len(raw)), label="byte offset")
    # Never split a multi-byte character of the real file: go back to a character start.
    while 0 < at < len(raw) and raw[at] & 0xC0 == 0x80:
        at -= 1
    line = raw[:at].count(b"\n") + 1
    return Case(raw[:at] + bad + raw[at:], None, (line, line), "not UTF-8")


# --------------------------------------------------------------------------- the checks


def assert_one_line_error(case: Case, file: Path, label: str) -> str:
    """Load `file` (named `label`); the MatrixError must be one line that fits `case`."""
    if isinstance(case.text, bytes):
        file.write_bytes(case.text)
    else:
        file.write_text(case.text, encoding="utf-8")
    with pytest.raises(MatrixError) as info:  # any other exception fails the test
        load(label)
    message = str(info.value)
    assert message.splitlines() == [message], message
    head = re.match(rf"{re.escape(label)}:(\d+): ", message)
    assert head is not None, message
    line = int(head.group(1))
    assert case.lines[0] <= line <= case.lines[1], (message, case.lines)
    rest = message[head.end() :]
    if case.path is None:
        assert rest.startswith(("YAML syntax error: ", "not UTF-8")), message
    elif case.path == ANY_KEY_PATH:
        assert re.match(r"(YAML syntax error|[^\s:][^:]*): \S", rest), message
    else:
        # The message went through _one_line as a whole: so does what it must start with.
        named = [f"{head.group()}{case.path}{end}" for end in (": ", "[", ".")]
        named = [matrix.one_line(n) for n in (named[:1] if case.exact else named)]
        assert message.startswith(tuple(named)), (message, case.path)
    assert case.fragment in rest, (message, case.fragment)
    return message


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@fast(30)
@given(
    name=st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=12),
    what=st.sampled_from(["missing", "a folder", "not UTF-8"]),
)
def test_unreadable_file_gives_one_line(workdir: Path, name: str, what: str) -> None:
    """The file name is part of every message: a newline or a NUL byte in it changes nothing."""
    assume(name not in (".", ".."))
    path = workdir / "names" / name
    (workdir / "names").mkdir(exist_ok=True)
    with contextlib.suppress(OSError, ValueError):  # leftovers of an earlier example
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError, ValueError):
        if what == "a folder":
            path.mkdir()
        elif what == "not UTF-8":
            path.write_bytes(b"stacks: [\xff]\n")
    with pytest.raises(MatrixError) as info:
        load(str(path))
    message = str(info.value)
    assert message.splitlines() == [message], message
    assert message.startswith(matrix.one_line(f"{path}:")), message


def test_at_least_thirty_kinds() -> None:
    names = [name for name, _ in KINDS]
    assert len(names) >= 30
    assert len(set(names)) == len(names)


def test_the_starting_points_are_valid(workdir: Path) -> None:
    """Every kind breaks one thing: what it starts from must load."""
    doc = fresh()
    with_model(doc, "hub-extra", HUB_MODEL)
    with_model(doc, "local-extra", LOCAL_MODEL)
    doc["include"] = [{"model": "tiny-gpt2", **RULE_AXES}]
    doc["exclude"] = [{"model": "gpt2-1.5b"}]
    doc["profiles"]["smoke"]["include"] = [{"model": "tiny-gpt2", **RULE_AXES}]
    path = workdir / "valid.yaml"
    cells = {len(load(REPO / "matrix.yaml").cells(p)) for p in PROFILE_NAMES}
    for text in (BASE_TEXT, dump(BASE)):
        path.write_text(text, encoding="utf-8")
        assert {len(load(path).cells(p)) for p in PROFILE_NAMES} == cells
    path.write_text(dump(doc), encoding="utf-8")
    assert load(path).model("hub-extra").location == "gpt2"


@fast(250)
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_malformed_matrix_gives_one_line(
    workdir: Path, kind: tuple[str, Callable[[st.DataObject], Case]], data: st.DataObject
) -> None:
    case = kind[1](data)
    file = workdir / "matrix.yaml"
    assert_one_line_error(case, file, str(file))


@pytest.mark.parametrize("kind", KINDS, ids=[name for name, _ in KINDS])
@fast(3)
@given(data=st.data())
def test_each_kind_gives_one_line(
    workdir: Path, kind: tuple[str, Callable[[st.DataObject], Case]], data: st.DataObject
) -> None:
    # The sampled test above may skip a kind on a given run; this one never does.
    case = kind[1](data)
    file = workdir / "each.yaml"
    assert_one_line_error(case, file, str(file))


# --------------------------------------------------------------------------- the command line


def harness(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == usage.USAGE_EXIT, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.endswith("\n"), result.stderr
    line = result.stderr[:-1]
    assert line.splitlines() == [line], result.stderr
    assert line.startswith("harness: error: "), result.stderr
    return line


@fast(6)
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_cli_validate_malformed_matrix(
    workdir: Path, kind: tuple[str, Callable[[st.DataObject], Case]], data: st.DataObject
) -> None:
    # A relative path, as a user types it: the message names it as given.
    message = assert_one_line_error(kind[1](data), workdir / "bad.yaml", str(workdir / "bad.yaml"))
    result = harness("validate", "bad.yaml", cwd=workdir)
    line = assert_usage_error(result)
    assert line == "harness: error: " + message.replace(str(workdir / "bad.yaml"), "bad.yaml", 1)
    assert result.stdout == ""


NO_LINE_BREAKS = st.text(
    alphabet=st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]), min_size=1, max_size=12
)


@fast(60)
@given(
    args=st.one_of(
        st.tuples(st.just("cells"), st.just("--profile"), NO_LINE_BREAKS),
        st.tuples(st.just("cells"), st.just("--models"), NO_LINE_BREAKS),
        st.tuples(st.just("cells"), st.just("--stacks"), NO_LINE_BREAKS),
        st.tuples(st.just("cells"), st.just("--repeats"), NO_LINE_BREAKS),
        st.tuples(st.just("cells"), st.just("--timeout"), NO_LINE_BREAKS),
        st.tuples(st.just("cells"), st.just("--mode"), NO_LINE_BREAKS),
        st.tuples(st.just("summary"), NO_LINE_BREAKS.map(lambda t: f"/no/such/{t}")),
        st.tuples(st.sampled_from(["", "nope", "--bogus", "cells --x"])),
    )
)
def test_cli_bad_arguments_in_process(args: tuple[str, ...]) -> None:
    """The same promise for drawn arguments, run in this process (a subprocess each is slow)."""
    valid = {"--profile": PROFILE_NAMES, "--mode": list(matrix.MODES)}
    if len(args) == 3 and args[1] in valid:
        assume(args[2] not in valid[args[1]])
    if len(args) == 3 and args[1] in ("--models", "--stacks"):
        known = MODEL_IDS if args[1] == "--models" else STACK_IDS
        ids = [i.strip() for i in args[2].split(",") if i.strip()]
        assume(not ids or any(i not in known for i in ids))
    if len(args) == 3 and args[1] in ("--repeats", "--timeout"):
        with contextlib.suppress(ValueError):
            value = (int if args[1] == "--repeats" else float)(args[2])
            assume(not value > 0 and not math.isnan(value))  # cli takes --timeout nan
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([a for a in args if a])
    assert code == usage.USAGE_EXIT, (args, err.getvalue(), out.getvalue())
    text = err.getvalue()
    assert text.endswith("\n"), text
    assert text[:-1].splitlines() == [text[:-1]], text
    assert text.startswith("harness: error: "), text
    assert out.getvalue() == ""
