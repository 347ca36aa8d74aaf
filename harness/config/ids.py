"""Readable, stable ids: formatted and parsed here only; `parse` is the inverse of `format`.

Stack: ``tf4.46.3-torch2.5.1-py3.11``. Scenario: ``st/fp32/lcmu=true/dm=none``, followed by
the later axes only where they leave their default (``/batch=4/attn=eager/q=int8/offload=disk``),
so the ids of runs made before those axes existed still name the same scenarios.
Cell: ``<model>/<scenario>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from collections.abc import Sequence

DTYPE_SHORT = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
FORMAT_SHORT = {"safetensors": "st", "bin": "bin"}
_DTYPE_LONG = {v: k for k, v in DTYPE_SHORT.items()}
_FORMAT_LONG = {v: k for k, v in FORMAT_SHORT.items()}
_LCMU = {None: "omit", True: "true", False: "false"}
_LCMU_BACK = {v: k for k, v in _LCMU.items()}

_STACK = re.compile(r"tf(?P<tf>[^-]+)-torch(?P<torch>[^-]+)-py(?P<python>[^-]+)")
# The later axes: their defaults, their values and their key in an id.
LATER_AXES = {
    "batch": (1, None, "batch"),
    "attn_implementation": ("default", ("default", "eager", "sdpa"), "attn"),
    "quantization": ("none", ("none", "int8"), "q"),
    "offload": ("none", ("none", "disk"), "offload"),
}
_SCENARIO = re.compile(
    rf"(?P<fmt>{'|'.join(_FORMAT_LONG)})/(?P<dtype>{'|'.join(_DTYPE_LONG)})"
    rf"/lcmu=(?P<lcmu>{'|'.join(_LCMU_BACK)})/dm=(?P<dm>[a-z]+)"
    r"(?:/batch=(?P<batch>[2-9]|[1-9]\d+))?(?:/attn=(?P<attn>eager|sdpa))?"
    r"(?:/q=(?P<q>int8))?(?:/offload=(?P<offload>disk))?"
)


class IdError(ValueError):
    """Text that is not an id of the expected form; str() is one line."""


@dataclass(frozen=True)
class StackVersions:
    transformers: str
    torch: str
    python: str


@dataclass(frozen=True)
class ScenarioAxes:
    low_cpu_mem_usage: bool | None
    device_map: str | None
    dtype: str
    checkpoint_format: str
    batch: int = 1
    attn_implementation: str = "default"
    quantization: str = "none"
    offload: str = "none"


def stack_id(transformers: str, torch: str, python: str) -> str:
    return f"tf{transformers}-torch{torch}-py{python}"


def parse_stack_id(text: str) -> StackVersions | None:
    """The versions a default stack id names; None for a custom id (`id:` in matrix.yaml)."""
    match = _STACK.fullmatch(text)
    if match is None:
        return None
    return StackVersions(match["tf"], match["torch"], match["python"])


def scenario_id(  # noqa: PLR0917 - one argument per axis
    low_cpu_mem_usage: bool | None,
    device_map: str | None,
    dtype: str,
    checkpoint_format: str,
    batch: int = 1,
    attn_implementation: str = "default",
    quantization: str = "none",
    offload: str = "none",
) -> str:
    dm = device_map or "none"
    fmt, short = FORMAT_SHORT[checkpoint_format], DTYPE_SHORT[dtype]
    text = f"{fmt}/{short}/lcmu={_LCMU[low_cpu_mem_usage]}/dm={dm}"
    later = (batch, attn_implementation, quantization, offload)
    for value, (default, _, key) in zip(later, LATER_AXES.values(), strict=True):
        if value != default:
            text += f"/{key}={value}"
    return text


def parse_scenario_id(text: str) -> ScenarioAxes:
    match = _SCENARIO.fullmatch(text)
    if match is None:
        raise IdError(
            f"bad scenario id {text!r}: expected FORMAT/DTYPE/lcmu=omit|true|false/dm=...[/batch=N]"
            "[/attn=eager|sdpa][/q=int8][/offload=disk], e.g. st/fp32/lcmu=false/dm=cpu"
        )
    return ScenarioAxes(
        low_cpu_mem_usage=_LCMU_BACK[match["lcmu"]],
        device_map=None if match["dm"] == "none" else match["dm"],
        dtype=_DTYPE_LONG[match["dtype"]],
        checkpoint_format=_FORMAT_LONG[match["fmt"]],
        batch=int(match["batch"] or 1),
        attn_implementation=match["attn"] or "default",
        quantization=match["q"] or "none",
        offload=match["offload"] or "none",
    )


def cell_id(model: str, scenario: str) -> str:
    return f"{model}/{scenario}"


def parse_version(text: object) -> Version | None:
    """A release's version, its local label (+cpu) aside; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        return Version(text.split("+")[0])
    except InvalidVersion:
        return None


def version_key(text: object) -> tuple[int, Version, str]:
    """Versions in version order (4.9 before 4.10), local labels aside; the rest last, by text."""
    version = parse_version(str(text))
    return (1, Version("0"), str(text)) if version is None else (0, version, str(text))


def stack_order_key(
    stack: str, transformers: Sequence[object] = (), torch: Sequence[object] = ()
) -> tuple[int, Version, Version, str]:
    """Sort key for stacks: by transformers then torch version, as installed (the first
    readable of the given values), else as the default id says; unknown versions go last."""
    tf = next((v for t in transformers if (v := parse_version(t))), None)
    tv = next((v for t in torch if (v := parse_version(t))), None)
    parsed = parse_stack_id(stack)
    if parsed is not None:
        tf = tf or parse_version(parsed.transformers)
        tv = tv or parse_version(parsed.torch)
    if tf is None or tv is None:
        return (1, Version("0"), Version("0"), stack)
    return (0, tf, tv, stack)
