"""harness/config/ids.py: ids are formatted and parsed there only; parse inverts format."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config import ids
from harness.config.matrix import CHECKPOINT_FORMATS, DEVICE_MAPS, DTYPES

LCMU = (None, True, False)
DEVICE = (None, *DEVICE_MAPS)


@pytest.mark.parametrize(
    ("lcmu", "device_map", "dtype", "fmt"),
    list(itertools.product(LCMU, DEVICE, DTYPES, CHECKPOINT_FORMATS)),
)
def test_parse_scenario_id_inverts_format(
    lcmu: bool | None, device_map: str | None, dtype: str, fmt: str
) -> None:
    text = ids.scenario_id(lcmu, device_map, dtype, fmt)
    assert ids.parse_scenario_id(text) == ids.ScenarioAxes(lcmu, device_map, dtype, fmt)


@pytest.mark.parametrize(
    ("later", "suffix"),
    [
        ((4, "default", "none", "none"), "/batch=4"),
        ((1, "eager", "none", "none"), "/attn=eager"),
        ((1, "sdpa", "int8", "none"), "/attn=sdpa/q=int8"),
        ((16, "eager", "int8", "disk"), "/batch=16/attn=eager/q=int8/offload=disk"),
        ((1, "default", "none", "disk"), "/offload=disk"),
    ],
)
def test_later_axes_are_named_only_off_their_defaults(
    later: tuple[int, str, str, str], suffix: str
) -> None:
    text = ids.scenario_id(True, "cpu", "float32", "safetensors", *later)
    assert text == "st/fp32/lcmu=true/dm=cpu" + suffix
    assert ids.parse_scenario_id(text) == ids.ScenarioAxes(
        True, "cpu", "float32", "safetensors", *later
    )
    # The ids of runs from before these axes still parse, to the defaults.
    assert ids.parse_scenario_id("st/fp32/lcmu=true/dm=cpu").batch == 1


def test_scenario_id_examples() -> None:
    assert ids.scenario_id(True, None, "float32", "safetensors") == "st/fp32/lcmu=true/dm=none"
    assert ids.scenario_id(None, "cpu", "bfloat16", "bin") == "bin/bf16/lcmu=omit/dm=cpu"
    assert ids.cell_id("gpt2-355m", "st/fp32/lcmu=true/dm=none") == (
        "gpt2-355m/st/fp32/lcmu=true/dm=none"
    )


VERSION = st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,2}){0,2}(\.dev[0-9]|rc[0-9]|\+cpu)?", fullmatch=True)


@given(transformers=VERSION, torch=VERSION, python=st.from_regex(r"3\.[0-9]{1,2}", fullmatch=True))
def test_parse_stack_id_inverts_format(transformers: str, torch: str, python: str) -> None:
    text = ids.stack_id(transformers, torch, python)
    assert ids.parse_stack_id(text) == ids.StackVersions(transformers, torch, python)


def test_stack_id_example_and_custom_ids() -> None:
    assert ids.stack_id("4.46.3", "2.5.1", "3.11") == "tf4.46.3-torch2.5.1-py3.11"
    assert ids.parse_stack_id("system-env") is None
    assert ids.parse_stack_id("tf4.46.3-torch2.5.1") is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "st/fp32/lcmu=true",
        "st/fp32/lcmu=maybe/dm=none",
        "gguf/fp32/lcmu=true/dm=none",
        "st/fp8/lcmu=true/dm=none",
        "st/fp32/lcmu=true/dm=none/extra",
        "ST/FP32/lcmu=true/dm=none",
        "st/fp32/lcmu=true/dm=",
        "st/fp32/lcmu=true/dm=none/batch=1",  # a default is never written
        "st/fp32/lcmu=true/dm=none/attn=default",
        "st/fp32/lcmu=true/dm=none/q=int8/batch=4",  # the order is fixed
        "st/fp32/lcmu=true/dm=none/batch=04",
    ],
)
def test_bad_scenario_ids_raise(text: str) -> None:
    with pytest.raises(ids.IdError) as info:
        ids.parse_scenario_id(text)
    message = str(info.value)
    assert message.splitlines() == [message]
    assert repr(text) in message


@given(
    st.text(max_size=30)
    | st.from_regex(r"st/fp32/lcmu=true/dm=none(/[a-z]+=[0-9a-z]+){0,3}", fullmatch=True)
)
def test_parse_scenario_id_raises_only_id_error(text: str) -> None:
    try:
        axes = ids.parse_scenario_id(text)
    except ids.IdError:
        return
    # What parses formats back to itself: format is the inverse of parse too.
    assert ids.scenario_id(*dataclasses.astuple(axes)) == text


def test_stack_order_key_sorts_by_versions() -> None:
    stacks = ["tf5.24.0-torch2.13.0-py3.12", "custom", "tf4.46.3-torch2.5.1-py3.11"]
    ordered = sorted(stacks, key=ids.stack_order_key)
    assert ordered == ["tf4.46.3-torch2.5.1-py3.11", "tf5.24.0-torch2.13.0-py3.12", "custom"]
    assert ids.stack_order_key("custom", ["4.46.3"], ["2.5.1"])[0] == 0


def test_versions_sort_as_releases_local_labels_aside_and_the_rest_last() -> None:
    texts = ["4.10.0", "nightly", "2.13.0+cpu", "4.9.1", "2.13.0", None]
    assert sorted(texts, key=ids.version_key) == [
        "2.13.0", "2.13.0+cpu", "4.9.1", "4.10.0", None, "nightly",
    ]  # fmt: skip
    assert ids.parse_version("2.13.0+cpu") == ids.parse_version("2.13.0")
    assert ids.parse_version("") is None
    assert ids.parse_version(None) is None
