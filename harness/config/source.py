"""A YAML file as plain data plus the line of every key path, for one-line errors.

Composed (`yaml.compose`), not loaded: the node tree keeps every line and shows duplicate
keys, which PyYAML's loader silently collapses. A key path is e.g. ``("stacks", 0, "torch")``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["Loc", "Source", "SourceError", "dotted", "one_line", "read"]

Loc = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_KINDS = {
    "tag:yaml.org,2002:int": "a YAML integer",
    "tag:yaml.org,2002:float": "a YAML float",
    "tag:yaml.org,2002:bool": "a YAML boolean",
    "tag:yaml.org,2002:timestamp": "a YAML timestamp",
}
_CONSTRUCT = yaml.constructor.SafeConstructor()
# The safe loader's own constructors of the scalar tags above; any other tag fails.
_READERS: dict[str, Callable[[Any], object]] = {
    tag: functools.partial(_CONSTRUCT.yaml_constructors[tag], _CONSTRUCT)
    for tag in (*_KINDS, _NULL)
}
_MAX_MERGE_DEPTH = 100


class SourceError(ValueError):
    """A problem found while reading: `str()` is the one-line message, label included."""


def one_line(text: str) -> str:
    # Every line boundary of str.splitlines(), not only \r and \n (a key may hold \v or \u2028).
    return re.sub(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*", " ", text)


def dotted(loc: Loc) -> str:
    """``stacks[0].torch``; the empty path is ``(top level)``."""
    if not loc:
        return "(top level)"
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in loc).removeprefix(".")


@dataclass
class Source:
    """The data of one YAML file and the line of every key path in it."""

    label: str
    data: object = None
    lines: dict[Loc, int] = field(default_factory=dict)  # the value's first line
    key_lines: dict[Loc, int] = field(default_factory=dict)  # the key's line, for mappings
    raw: dict[Loc, str] = field(default_factory=dict)  # a non-string scalar as written

    def line(self, loc: Loc, *, key: bool = False) -> int:
        """The line of `loc`, else of its nearest parent that has one (1: the file)."""
        while True:
            if key and loc in self.key_lines:
                return self.key_lines[loc]
            if loc in self.lines:
                return self.lines[loc]
            if not loc:
                return 1
            loc = loc[:-1]

    def error(self, loc: Loc, problem: str, *, key: bool = False) -> str:
        return one_line(f"{self.label}:{self.line(loc, key=key)}: {dotted(loc)}: {problem}")


def read(file: Path, label: str) -> str:
    """The file's text; a missing, unreadable or not UTF-8 file raises `SourceError`."""
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(one_line(f"{label}: no such file")) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise SourceError(one_line(f"{label}:{line}: not UTF-8 text")) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SourceError(one_line(f"{label}: cannot read: {reason}")) from None


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


def parse(text: str, label: str) -> Source:
    """`text` composed and converted; a YAML error or a duplicate key raises `SourceError`."""
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = 1 if mark is None else mark.line + 1
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            problem = f"{exc.problem} ({exc.context})"
        raise SourceError(one_line(f"{label}:{line}: YAML syntax error: {problem}")) from None
    except yaml.reader.ReaderError as exc:  # a control character; its offset in the text
        line = text.count("\n", 0, exc.position) + 1
        problem = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        raise SourceError(one_line(f"{label}:{line}: YAML syntax error: {problem}")) from None
    except yaml.YAMLError as exc:
        raise SourceError(one_line(f"{label}:1: YAML syntax error: {exc}")) from None
    source = Source(label)
    if root is not None:
        source.data = _Builder(source).value(root, ())
    return source


@dataclass
class _Builder:
    source: Source

    def fail(self, node: yaml.Node, loc: Loc, problem: str) -> SourceError:
        line = node.start_mark.line + 1
        return SourceError(one_line(f"{self.source.label}:{line}: {dotted(loc)}: {problem}"))

    def value(self, node: yaml.Node, loc: Loc) -> object:
        self.source.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, object] = {}
            for key, (key_node, value_node) in self.entries(node, loc, set()).items():
                self.source.key_lines[(*loc, key)] = key_node.start_mark.line + 1
                out[key] = self.value(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*loc, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, loc)

    def scalar(self, node: yaml.Node, loc: Loc) -> object:
        """A tagged scalar's value; one YAML cannot read (`0x_`, `!!int abc`, `!!float ""`,
        `!!bool maybe`, an int of over 4300 digits, one too large for a float) fails."""
        if node.tag == _STR:
            return str(node.value)
        if node.tag != _NULL:
            self.source.raw[loc] = str(node.value)
        reader = _READERS.get(node.tag)
        if reader is None:
            problem = f"unsupported YAML tag {node.tag} on {node.value!r}"
            raise self.fail(node, loc, problem)
        try:
            return reader(node)
        except (ValueError, KeyError, IndexError, OverflowError, TypeError):
            shown = node.value if len(node.value) <= 20 else f"{node.value[:20]}..."
            raise self.fail(node, loc, f"cannot read {shown!r} as {_KINDS[node.tag]}") from None

    def entries(
        self, node: yaml.MappingNode, loc: Loc, active: set[int]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Keys to (key node, value node); duplicates fail, `<<` merge keys are honored."""
        if id(node) in active:
            raise self.fail(node, loc, "recursive merge key")
        if len(active) >= _MAX_MERGE_DEPTH:
            raise self.fail(node, loc, "merge keys (<<) nested too deeply")
        active.add(id(node))
        own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                items = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for item in items:
                    if not isinstance(item, yaml.MappingNode):
                        got = _got(item)
                        raise self.fail(item, loc, f"a merge key (<<) needs a mapping, got {got}")
                    for key, pair in self.entries(item, loc, active).items():
                        merged.setdefault(key, pair)
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
                problem = f"keys must be plain strings, got {_got(key_node)}"
                raise self.fail(key_node, loc, problem)
            key = str(key_node.value)
            if key in own:
                first = own[key][0].start_mark.line + 1
                problem = f"duplicate key {key!r} (first at line {first})"
                raise self.fail(key_node, (*loc, key), problem)
            own[key] = (key_node, value_node)
        active.discard(id(node))
        return {**merged, **own}


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
