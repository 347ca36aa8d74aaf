"""harness.config.matrix.load: every validation error of matrix.yaml, one line each.

Each message is ``<file>:<line>: <key.path>: <problem>``; the tables give the text, the line
and what the message must say. The fuzz test (test_loader_fuzz.py) draws many more.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config.matrix import MatrixError, load

# Small valid sections; their line counts matter for the error table below.
STACKS = 'stacks:\n  - {python: "3.11", transformers: "4.46.3", torch: "2.5.1"}\n'  # lines 1-2
MODELS = (  # lines 3-5 after STACKS
    "models:\n"
    "  tiny-gpt2: {source: embedded, prompts: [hi]}\n"
    "  gpt2-124m: {source: preset, prompts: [hi]}\n"
)
PROFILES = "profiles:\n  smoke: {}\n  default: {}\n  full: {}\n"  # lines 6-9 after both
VALID = STACKS + MODELS + PROFILES
TWO_STACKS = (
    "stacks:\n"
    '  - {python: "3.11", transformers: "4.46.3", torch: "2.5.1", accelerate: "1.1.1"}\n'
    '  - {python: "3.12", transformers: "4.57.6", torch: "2.8.0"}\n'
)
TF4 = "tf4.46.3-torch2.5.1-py3.11"
TF457 = "tf4.57.6-torch2.8.0-py3.12"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> object:
    return load(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(MatrixError) as info:
        load(missing)
    assert str(info.value) == f"{missing}: no such file"
    with pytest.raises(MatrixError, match=r"^nope\.yaml: no such file$"):
        load("nope.yaml")


# --------------------------------------------------------------------------- validation errors


def _settings(body: str) -> str:
    return f"settings: {{{body}}}\n" + VALID  # error on line 1


def _stack(body: str) -> str:
    return f"stacks:\n  - {{{body}}}\n" + MODELS + PROFILES  # error on line 2


def _model(body: str, name: str = "extra") -> str:
    return STACKS + MODELS + f"  {name}: {{{body}}}\n" + PROFILES  # error on line 6


def _scenarios(body: str) -> str:
    return STACKS + MODELS + f"scenarios: {{{body}}}\n" + PROFILES  # error on line 6


def _rules(key: str, body: str) -> str:
    return STACKS + MODELS + f"{key}:\n  - {body}\n" + PROFILES  # error on line 7


def _profile(body: str) -> str:
    return STACKS + MODELS + f"profiles:\n  smoke: {{{body}}}\n  default: {{}}\n  full: {{}}\n"


GOOD = 'python: "3.11", transformers: "4.46.3", torch: "2.5.1"'

ERRORS = [
    # -- YAML itself
    pytest.param(
        "stacks: [\n  - a\n", 2, "YAML syntax error: expected the node content", id="yaml-syntax"
    ),
    pytest.param(
        "a: 1\n b: 2\n", 2, "YAML syntax error: mapping values are not allowed", id="yaml-indent"
    ),
    pytest.param("stacks:\n\t- a\n", 2, "YAML syntax error: found character '\\t'", id="yaml-tab"),
    pytest.param(
        VALID + "---\nb: 2\n",
        10,
        "YAML syntax error: but found another document",
        id="yaml-two-docs",
    ),
    pytest.param("", 1, "(top level): the file is empty", id="empty-file"),
    pytest.param("# only a comment\n", 1, "the file is empty", id="comment-only"),
    pytest.param(
        "- stacks\n", 1, "(top level): expected a mapping, got a list", id="top-not-mapping"
    ),
    # -- top level keys
    pytest.param(
        MODELS + PROFILES,
        1,
        "(top level): must list at least one stack or sweep",
        id="missing-stacks",
    ),
    pytest.param(STACKS + PROFILES, 1, "missing required key 'models'", id="missing-models"),
    pytest.param(STACKS + MODELS, 1, "missing required key 'profiles'", id="missing-profiles"),
    pytest.param(
        VALID + "stackz: []\n",
        10,
        "stackz: unknown key 'stackz' (did you mean 'stacks'? allowed: settings, stacks,",
        id="unknown-top-key",
    ),
    pytest.param(
        STACKS + STACKS + MODELS + PROFILES,
        3,
        "stacks: duplicate key 'stacks' (first at line 1)",
        id="duplicate-top-key",
    ),
    # -- settings
    pytest.param(
        _settings("repeats: 0"), 1, "settings.repeats: must be positive, got 0", id="repeats-zero"
    ),
    pytest.param(
        _settings("repeats: -2"),
        1,
        "settings.repeats: must be positive, got -2",
        id="repeats-negative",
    ),
    pytest.param(
        _settings("repeats: true"),
        1,
        "settings.repeats: expected a positive integer, got true (a YAML boolean)",
        id="repeats-bool",
    ),
    pytest.param(
        _settings("repeats: yes"),
        1,
        "expected a positive integer, got yes (a YAML boolean)",
        id="repeats-yes",
    ),
    pytest.param(
        _settings("repeats: 2.5"),
        1,
        "expected a positive integer, got 2.5 (a YAML float)",
        id="repeats-float",
    ),
    pytest.param(
        _settings('repeats: "3"'), 1, "expected a positive integer, got '3'", id="repeats-string"
    ),
    pytest.param(
        _settings("timeout_s: 0"), 1, "settings.timeout_s: must be positive", id="timeout-zero"
    ),
    pytest.param(
        _settings("timeout_s: -1.5"),
        1,
        "settings.timeout_s: must be positive",
        id="timeout-negative",
    ),
    pytest.param(
        _settings("timeout_s: .inf"),
        1,
        "settings.timeout_s: must be positive and finite",
        id="timeout-inf",
    ),
    pytest.param(
        _settings("timeout_s: false"),
        1,
        "settings.timeout_s: expected a positive number, got false",
        id="timeout-bool",
    ),
    pytest.param(
        _settings("timeout_s: 10m"), 1, "expected a positive number, got '10m'", id="timeout-string"
    ),
    pytest.param(
        _settings("max_new_tokens: 0"),
        1,
        "settings.max_new_tokens: must be positive",
        id="settings-mnt-zero",
    ),
    pytest.param(
        _settings("mode: spawn"),
        1,
        "settings.mode: expected one of forkserver, fresh, got 'spawn'",
        id="mode",
    ),
    pytest.param(
        _settings("repeat: 3"),
        1,
        "settings.repeat: unknown key 'repeat' (did you mean 'repeats'? allowed: repeats, timeout_s, mode, max_new_tokens, golden_tolerance, threads, interop_threads)",
        id="settings-unknown-key",
    ),
    pytest.param(
        "settings: [1]\n" + VALID,
        1,
        "settings: expected a mapping, got a list",
        id="settings-not-mapping",
    ),
    # -- stacks
    pytest.param(
        "stacks: []\n" + MODELS + PROFILES,
        1,
        "stacks: must list at least one stack or sweep",
        id="stacks-empty",
    ),
    pytest.param(
        'stacks: []\nsweeps:\n  - {transformers: "4.5x", torch: ["2.13.0"], python: "3.11"}\n'
        + MODELS
        + PROFILES,
        3,
        "sweeps[0].transformers: invalid version range '4.5x'",
        id="sweep-bad-range",
    ),
    pytest.param(
        'stacks: []\nsweeps:\n  - {transformers: ">=4.44", torch: ["2.13.0"], python: "3.11", pick: {every: 0}}\n'
        + MODELS
        + PROFILES,
        3,
        "sweeps[0].pick: every: expected a positive integer, got 0",
        id="sweep-every-zero",
    ),
    pytest.param(
        'stacks: []\nsweeps:\n  - {transformers: ">=4.44", torch: ["2.13.0"], python: "3.11", pick: newest}\n'
        + MODELS
        + PROFILES,
        3,
        "sweeps[0].pick: expected one of latest-patch-per-minor, all or {every: N}, got 'newest'",
        id="sweep-unknown-pick",
    ),
    pytest.param(
        'stacks: []\nsweeps:\n  - {transformers: ">=4.44", torch: ">=2.5", python: "3.11"}\n'
        + MODELS
        + PROFILES,
        3,
        "sweeps[0].torch: expected an exact version",
        id="sweep-torch-range",
    ),
    pytest.param(
        'stacks: []\nsweeps:\n  - {transformers: ">=4.44", torch: ["2.13.0"], python: 3.11}\n'
        + MODELS
        + PROFILES,
        3,
        "sweeps[0].python:",
        id="sweep-python-float",
    ),
    pytest.param(
        'stacks: []\nsweeps:\n  - {transformers: ">=4.44", torch: ["2.13.0"], python: "3.11", tourch: 1}\n'
        + MODELS
        + PROFILES,
        3,
        "sweeps[0].tourch: unknown key 'tourch' (did you mean 'torch'?",
        id="sweep-unknown-key",
    ),
    pytest.param(
        "stacks:\n" + MODELS + PROFILES,
        1,
        "stacks: expected a list, got nothing (null)",
        id="stacks-null",
    ),
    pytest.param(
        "stacks: {a: 1}\n" + MODELS + PROFILES,
        1,
        "stacks: expected a list, got a mapping",
        id="stacks-mapping",
    ),
    pytest.param(
        "stacks:\n  - 3.11\n" + MODELS + PROFILES,
        2,
        "stacks[0]: expected a mapping, got 3.11 (a YAML float)",
        id="stack-not-mapping",
    ),
    pytest.param(
        "stacks:\n"
        f"  - {{{GOOD}}}\n"
        '  - {python: "3.11", transformers: "4.46.3", torch: 2.5}\n' + MODELS + PROFILES,
        3,
        'stacks[1].torch: expected a version string like "2.5.1", got 2.5',
        id="torch-float",
    ),
    pytest.param(
        _stack('python: "3.11", transformers: 4, torch: "2.5.1"'),
        2,
        'stacks[0].transformers: expected a version string like "4.46.3", got 4 (a YAML integer); quote it',
        id="transformers-int",
    ),
    pytest.param(
        _stack('python: "3.11", transformers: ">=4", torch: "2.5.1"'),
        2,
        "stacks[0].transformers: expected an exact version like \"4.46.3\", got the specifier '>=4'",
        id="transformers-specifier",
    ),
    pytest.param(
        _stack('python: "3.11", transformers: "==4.46.3", torch: "2.5.1"'),
        2,
        "got the specifier '==4.46.3'",
        id="transformers-eq-specifier",
    ),
    pytest.param(
        _stack('python: "3.11", transformers: "4.x", torch: "2.5.1"'),
        2,
        "stacks[0].transformers: invalid version '4.x'",
        id="transformers-wildcard",
    ),
    pytest.param(
        _stack('python: "3.11", transformers: "latest", torch: "2.5.1"'),
        2,
        "invalid version 'latest'",
        id="transformers-word",
    ),
    pytest.param(
        _stack('python: "3.11", transformers: "", torch: "2.5.1"'),
        2,
        "got an empty string",
        id="transformers-empty",
    ),
    pytest.param(
        _stack('python: "3.11", transformers: "4.46.3", torch: "2.5.1", accelerate: yes'),
        2,
        'stacks[0].accelerate: expected a version string like "1.1.1", got yes (a YAML boolean)',
        id="accelerate-bool",
    ),
    pytest.param(
        _stack('python: "3.11", transformers: "4.46.3", torch: "2.5.1", accelerate: "~=1.1"'),
        2,
        "stacks[0].accelerate: expected an exact version",
        id="accelerate-specifier",
    ),
    pytest.param(
        _stack('python: 3.11, transformers: "4.46.3", torch: "2.5.1"'),
        2,
        'stacks[0].python: expected a Python version string like "3.11", got 3.11 (a YAML float); quote it',
        id="python-float",
    ),
    pytest.param(
        _stack('python: "3.7", transformers: "4.46.3", torch: "2.5.1"'),
        2,
        "stacks[0].python: expected a Python major.minor version from 3.8 to 3.14, got '3.7'",
        id="python-too-old",
    ),
    pytest.param(
        _stack('python: "3.15", transformers: "4.46.3", torch: "2.5.1"'),
        2,
        "from 3.8 to 3.14, got '3.15'",
        id="python-too-new",
    ),
    pytest.param(
        _stack('python: "3.11.4", transformers: "4.46.3", torch: "2.5.1"'),
        2,
        "got '3.11.4'",
        id="python-patch",
    ),
    pytest.param(
        _stack('python: "2.7", transformers: "4.46.3", torch: "2.5.1"'),
        2,
        "got '2.7'",
        id="python-2",
    ),
    pytest.param(
        _stack('python: "3", transformers: "4.46.3", torch: "2.5.1"'),
        2,
        "got '3'",
        id="python-major-only",
    ),
    pytest.param(
        _stack('python: "3.11", transformers: "4.46.3"'),
        2,
        "stacks[0]: missing required key 'torch'",
        id="stack-missing-torch",
    ),
    pytest.param(
        _stack('transformers: "4.46.3", torch: "2.5.1"'),
        2,
        "stacks[0]: missing required key 'python'",
        id="stack-missing-python",
    ),
    pytest.param(
        _stack(GOOD + ', torhc: "2.5.1"'),
        2,
        "stacks[0].torhc: unknown key 'torhc' (did you mean 'torch'? allowed: id, install, python,",
        id="stack-unknown-key",
    ),
    pytest.param(
        _stack(GOOD + ', torch: "2.5.0"'),
        2,
        "stacks[0].torch: duplicate key 'torch' (first at line 2)",
        id="stack-duplicate-key",
    ),
    pytest.param(
        _stack(GOOD + ", pins: [numpy<<2]"),
        2,
        "stacks[0].pins[0]: invalid requirement 'numpy<<2'",
        id="pin-invalid",
    ),
    pytest.param(
        _stack(GOOD + ', pins: ["numpy >= 1 <2"]'),
        2,
        "invalid requirement 'numpy >= 1 <2'",
        id="pin-invalid-2",
    ),
    pytest.param(
        _stack(GOOD + ", pins: [numpy<2, 3]"),
        2,
        'stacks[0].pins[1]: expected a requirement string like "numpy<2", got 3',
        id="pin-not-string",
    ),
    pytest.param(
        _stack(GOOD + ", pins: [torch==2.4.0]"),
        2,
        "stacks[0].pins[0]: 'torch==2.4.0' conflicts with the stack's own 'torch' key",
        id="pin-torch",
    ),
    pytest.param(
        _stack(GOOD + ', accelerate: "1.1.1", pins: accelerate<1'),
        2,
        "stacks[0].pins: 'accelerate<1' conflicts",
        id="pin-accelerate",
    ),
    pytest.param(
        _stack(GOOD + ", pins: []"), 2, "stacks[0].pins: must not be empty", id="pins-empty"
    ),
    pytest.param(
        _stack(GOOD + ", pins: [a, a]"),
        2,
        "stacks[0].pins[1]: duplicate value 'a'",
        id="pins-duplicate",
    ),
    pytest.param(
        _stack(GOOD + ", find_links: [1]"),
        2,
        "stacks[0].find_links[0]: expected a URL or a folder path, got 1",
        id="find-links-type",
    ),
    pytest.param(
        _stack(GOOD + ", index_url: pypi"),
        2,
        "stacks[0].index_url: expected a URL like https://host/simple, got 'pypi'",
        id="index-url",
    ),
    pytest.param(
        _stack(GOOD + ", torch_backend: cuda"),
        2,
        "stacks[0].torch_backend: expected auto, cpu, xpu, cuXYZ or rocmX.Y, got 'cuda'",
        id="torch-backend",
    ),
    pytest.param(
        _stack(GOOD + ", id: a/b"), 2, "stacks[0].id: invalid id 'a/b'", id="stack-id-slash"
    ),
    pytest.param(
        "stacks:\n" + f"  - {{{GOOD}}}\n" + f"  - {{{GOOD}}}\n" + MODELS + PROFILES,
        3,
        "stacks[1].id: duplicate stack id 'tf4.46.3-torch2.5.1-py3.11' (also stacks[0], line 2)",
        id="duplicate-derived-stack-id",
    ),
    pytest.param(
        "stacks:\n"
        f"  - {{{GOOD}, id: x}}\n"
        '  - python: "3.12"\n    transformers: "4.57.6"\n    torch: "2.8.0"\n    id: x\n'
        + MODELS
        + PROFILES,
        6,
        "stacks[1].id: duplicate stack id 'x'",
        id="duplicate-explicit-stack-id",
    ),
    # -- models
    pytest.param(
        STACKS + "models: []\n" + PROFILES,
        3,
        "models: expected a mapping, got a list",
        id="models-list",
    ),
    pytest.param(
        STACKS + "models: {}\n" + PROFILES,
        3,
        "models: must define at least one model",
        id="models-empty",
    ),
    pytest.param(
        STACKS + MODELS + "  tiny-gpt2: {source: embedded, prompts: [x]}\n" + PROFILES,
        6,
        "models.tiny-gpt2: duplicate key 'tiny-gpt2' (first at line 4)",
        id="duplicate-model-id",
    ),
    pytest.param(
        _model("prompts: [x]"),
        6,
        "models.extra: missing required key 'source'",
        id="model-missing-source",
    ),
    pytest.param(
        _model("source: preset", "gpt2-355m"),
        6,
        "models.gpt2-355m: missing required key 'prompts'",
        id="model-missing-prompts",
    ),
    pytest.param(
        _model("source: pypi, prompts: [x]"),
        6,
        "models.extra.source: expected one of embedded, preset, local, hub, got 'pypi'",
        id="model-unknown-source",
    ),
    pytest.param(
        _model("source: preset, prompts: [x]", "gpt2-2b"),
        6,
        "models.gpt2-2b: unknown preset 'gpt2-2b' (known: gpt2-1.5b, gpt2-124m, gpt2-355m, gpt2-774m, llama-240m, tiny-llama, tiny-neox, tiny-qwen2, tiny-t5)",
        id="preset-unknown-by-id",
    ),
    pytest.param(
        _model("source: preset, preset: gpt2-xl, prompts: [x]"),
        6,
        "models.extra.preset: unknown preset 'gpt2-xl'",
        id="preset-unknown-by-key",
    ),
    pytest.param(
        _model("source: embedded, prompts: [x]"),
        6,
        "models.extra: unknown embedded fixture 'extra' (known: tiny-gpt2)",
        id="embedded-unknown",
    ),
    pytest.param(
        _model("source: local, prompts: [x]"),
        6,
        "models.extra: source 'local' needs the key 'path'",
        id="local-missing-path",
    ),
    pytest.param(
        _model("source: hub, prompts: [x]"),
        6,
        "models.extra: source 'hub' needs the key 'repo'",
        id="hub-missing-repo",
    ),
    pytest.param(
        _model("source: hub, repo: 'a b', prompts: [x]"),
        6,
        "models.extra.repo: invalid Hub repo id 'a b'",
        id="hub-bad-repo",
    ),
    pytest.param(
        _model("source: hub, repo: gpt2, revision: 1234, prompts: [x]"),
        6,
        "models.extra.revision: expected a string, got 1234 (a YAML integer); quote it",
        id="hub-revision-int",
    ),
    pytest.param(
        _model("source: local, path: 7, prompts: [x]"),
        6,
        "models.extra.path: expected a folder path, got 7",
        id="local-path-int",
    ),
    pytest.param(
        _model("source: preset, repo: gpt2, prompts: [x]", "gpt2-355m"),
        6,
        "models.gpt2-355m.repo: not allowed for source 'preset' (allowed: source, prompts, preset, shards)",
        id="model-key-wrong-source",
    ),
    pytest.param(
        _model("source: hub, repo: gpt2, prompts: [x], promts: [y]"),
        6,
        "models.extra.promts: unknown key 'promts' (did you mean 'prompts'?",
        id="model-unknown-key",
    ),
    pytest.param(
        _model("source: hub, repo: gpt2, prompts: []"),
        6,
        "models.extra.prompts: must list at least one prompt",
        id="prompts-empty",
    ),
    pytest.param(
        _model("source: hub, repo: gpt2, prompts: hi"),
        6,
        "models.extra.prompts: expected a list, got 'hi'",
        id="prompts-scalar",
    ),
    pytest.param(
        _model("source: hub, repo: gpt2, prompts: [ok, 12]"),
        6,
        "models.extra.prompts[1]: expected a string, got 12",
        id="prompts-int",
    ),
    pytest.param(
        _model("source: hub, repo: gpt2, prompts: ['  ']"),
        6,
        "models.extra.prompts[0]: expected a string, got an empty string",
        id="prompts-blank",
    ),
    pytest.param(
        _model("source: hub, repo: gpt2, prompts: [x], trust_remote_code: 'yes'"),
        6,
        "models.extra.trust_remote_code: expected true or false, got 'yes'",
        id="trust-remote-code-string",
    ),
    pytest.param(
        _model("source: hub, repo: gpt2, prompts: [x]", "a/b"),
        6,
        "models.a/b: invalid model id 'a/b'",
        id="model-id-slash",
    ),
    pytest.param(
        STACKS + "models:\n  tiny-gpt2: preset\n" + PROFILES,
        4,
        "models.tiny-gpt2: expected a mapping, got 'preset'",
        id="model-not-mapping",
    ),
    # -- scenarios
    pytest.param(_scenarios("dtype: []"), 6, "scenarios.dtype: must not be empty", id="axis-empty"),
    pytest.param(
        _scenarios("dtype: [fp32]"),
        6,
        "scenarios.dtype[0]: expected one of float32, bfloat16, float16, got 'fp32'",
        id="dtype-invalid",
    ),
    pytest.param(
        _scenarios("dtype: [float32, float32]"),
        6,
        "scenarios.dtype[1]: duplicate value 'float32'",
        id="axis-duplicate",
    ),
    pytest.param(
        _scenarios("low_cpu_mem_usage: [maybe]"),
        6,
        "scenarios.low_cpu_mem_usage[0]: expected omit, true or false, got 'maybe'",
        id="lcmu-invalid",
    ),
    pytest.param(
        _scenarios("low_cpu_mem_usage: ['true']"),
        6,
        "expected omit, true or false, got 'true'",
        id="lcmu-quoted-true",
    ),
    pytest.param(
        _scenarios("low_cpu_mem_usage: [omit, 1]"),
        6,
        "scenarios.low_cpu_mem_usage[1]: expected omit, true or false, got 1",
        id="lcmu-int",
    ),
    pytest.param(
        _scenarios("device_map: [gpu]"),
        6,
        "scenarios.device_map[0]: expected none, cpu, auto, cuda, got 'gpu'",
        id="device-map-invalid",
    ),
    pytest.param(
        _scenarios("device_map: [{'': 0}]"),
        6,
        "scenarios.device_map[0]: expected none, cpu, auto, cuda, got a mapping",
        id="device-map-mapping",
    ),
    pytest.param(
        _scenarios("checkpoint_format: [pt]"),
        6,
        "scenarios.checkpoint_format[0]: expected one of safetensors, bin, got 'pt'",
        id="format-invalid",
    ),
    pytest.param(
        _scenarios("max_new_tokens: 0"),
        6,
        "scenarios.max_new_tokens: must be positive, got 0",
        id="scenario-mnt-zero",
    ),
    pytest.param(
        _scenarios("max_new_tokens: true"),
        6,
        "scenarios.max_new_tokens: expected a positive integer, got true",
        id="scenario-mnt-bool",
    ),
    pytest.param(
        _scenarios("dtypes: [float32]"),
        6,
        "scenarios.dtypes: unknown key 'dtypes' (did you mean 'dtype'?",
        id="scenario-unknown-key",
    ),
    pytest.param(
        STACKS
        + MODELS
        + "scenarios:\n  dtype: [float32]\n  device_map: [cpu]\n  dtype: [float16]\n"
        + PROFILES,
        9,
        "scenarios.dtype: duplicate key 'dtype' (first at line 7)",
        id="scenario-duplicate-axis",
    ),
    # -- include / exclude
    pytest.param(
        _rules("exclude", "{model: tiny-gtp2}"),
        7,
        "exclude[0].model: unknown model 'tiny-gtp2' (known: gpt2-124m, tiny-gpt2)",
        id="exclude-unknown-model",
    ),
    pytest.param(
        _rules("exclude", "{model: [tiny-gpt2, gpt2-13b]}"),
        7,
        "exclude[0].model[1]: unknown model 'gpt2-13b'",
        id="exclude-unknown-model-list",
    ),
    pytest.param(
        _rules("exclude", "{stack: tf9}"),
        7,
        "exclude[0].stack: unknown stack 'tf9' (known: tf4.46.3-torch2.5.1-py3.11)",
        id="exclude-unknown-stack",
    ),
    pytest.param(
        _rules("exclude", "{}"),
        7,
        "exclude[0]: an empty rule matches every cell",
        id="exclude-empty-rule",
    ),
    pytest.param(
        _rules("exclude", "{modle: tiny-gpt2}"),
        7,
        "exclude[0].modle: unknown key 'modle' (did you mean 'model'?",
        id="rule-unknown-key",
    ),
    pytest.param(
        _rules("exclude", "{dtype: fp16}"),
        7,
        "exclude[0].dtype: expected one of float32, bfloat16, float16, got 'fp16'",
        id="rule-bad-axis-value",
    ),
    pytest.param(
        _rules("exclude", "{dtype: []}"),
        7,
        "exclude[0].dtype: must not be empty",
        id="rule-empty-list",
    ),
    pytest.param(
        STACKS + MODELS + "exclude: {model: tiny-gpt2}\n" + PROFILES,
        6,
        "exclude: expected a list, got a mapping",
        id="exclude-not-list",
    ),
    pytest.param(
        _rules("include", "{model: tiny-gpt2, dtype: float32}"),
        7,
        "include[0]: an include rule needs model and the first four scenario axes (missing: low_cpu_mem_usage, device_map, checkpoint_format)",
        id="include-missing-axes",
    ),
    pytest.param(
        _rules(
            "include",
            "{model: nope, low_cpu_mem_usage: true, device_map: none, dtype: float32, checkpoint_format: bin}",
        ),
        7,
        "include[0].model: unknown model 'nope'",
        id="include-unknown-model",
    ),
    pytest.param(
        _rules(
            "include",
            "{low_cpu_mem_usage: true, device_map: none, dtype: float32, checkpoint_format: bin}",
        ),
        7,
        "(missing: model)",
        id="include-missing-model",
    ),
    # -- profiles
    pytest.param(
        STACKS + MODELS + "profiles:\n  smoke: {}\n  default: {}\n",
        7,
        "profiles: missing required profile 'full'",
        id="profile-missing-full",
    ),
    pytest.param(
        STACKS + MODELS + "profiles:\n  default: {}\n  full: {}\n",
        7,
        "profiles: missing required profile 'smoke'",
        id="profile-missing-smoke",
    ),
    pytest.param(
        STACKS + MODELS + "profiles: [smoke, default, full]\n",
        6,
        "profiles: expected a mapping, got a list",
        id="profiles-list",
    ),
    pytest.param(
        VALID + "  smoke: {repeats: 2}\n",
        10,
        "profiles.smoke: duplicate key 'smoke' (first at line 7)",
        id="profile-duplicate",
    ),
    pytest.param(
        _profile("models: [tiny-gtp2]"),
        7,
        "profiles.smoke.models[0]: unknown model 'tiny-gtp2' (known: gpt2-124m, tiny-gpt2)",
        id="profile-unknown-model",
    ),
    pytest.param(
        _profile("stacks: [tf4.46.3-torch2.5.1-py3.12]"),
        7,
        "profiles.smoke.stacks[0]: unknown stack 'tf4.46.3-torch2.5.1-py3.12' (known: tf4.46.3-torch2.5.1-py3.11)",
        id="profile-unknown-stack",
    ),
    pytest.param(
        _profile("models: []"),
        7,
        "profiles.smoke.models: must not be empty",
        id="profile-models-empty",
    ),
    pytest.param(
        _profile("models: tiny-gpt2"),
        7,
        "profiles.smoke.models: expected a list, got 'tiny-gpt2'",
        id="profile-models-scalar",
    ),
    pytest.param(
        _profile("models: [tiny-gpt2, tiny-gpt2]"),
        7,
        "profiles.smoke.models[1]: duplicate value 'tiny-gpt2'",
        id="profile-models-duplicate",
    ),
    pytest.param(
        _profile("repeats: 0"),
        7,
        "profiles.smoke.repeats: must be positive, got 0",
        id="profile-repeats-zero",
    ),
    pytest.param(
        _profile("repeats: false"),
        7,
        "profiles.smoke.repeats: expected a positive integer, got false (a YAML boolean)",
        id="profile-repeats-bool",
    ),
    pytest.param(
        _profile("model: [tiny-gpt2]"),
        7,
        "profiles.smoke.model: unknown key 'model' (did you mean 'models'? allowed: models, stacks, scenarios, repeats, include, exclude)",
        id="profile-unknown-key",
    ),
    pytest.param(
        _profile("scenarios: {dtype: [float64]}"),
        7,
        "profiles.smoke.scenarios.dtype[0]: expected one of float32, bfloat16, float16, got 'float64'",
        id="profile-bad-axis",
    ),
    pytest.param(
        _profile("scenarios: {device_map: []}"),
        7,
        "profiles.smoke.scenarios.device_map: must not be empty",
        id="profile-empty-axis",
    ),
    pytest.param(
        _profile(
            "models: [tiny-gpt2], include: [{model: gpt2-124m, low_cpu_mem_usage: omit, device_map: none, dtype: float32, checkpoint_format: bin}]"
        ),
        7,
        "profiles.smoke.include[0].model: model 'gpt2-124m' is not selected by profile 'smoke' (selected: tiny-gpt2)",
        id="profile-include-unselected-model",
    ),
    pytest.param(
        _profile("exclude: [{model: [tiny-gpt2, gpt2-124m]}]"),
        7,
        "profiles.smoke: profile 'smoke' selects no cells",
        id="profile-empty-after-exclude",
    ),
    pytest.param(
        STACKS + MODELS + "exclude: [{dtype: float32}]\n" + PROFILES,
        8,
        "profiles.smoke: profile 'smoke' selects no cells",
        id="profile-empty-after-global-exclude",
    ),
    pytest.param(
        STACKS
        + MODELS
        + "exclude: [{model: tiny-gpt2}]\n"
        + "profiles:\n  smoke: {models: [gpt2-124m]}\n  default: {}\n  full: {models: [tiny-gpt2]}\n",
        10,
        "profiles.full: profile 'full' selects no cells",
        id="profile-full-empty",
    ),
    pytest.param(
        STACKS + MODELS + "profiles:\n  smoke: {}\n  default: {}\n  full: {}\n  my smoke: {}\n",
        10,
        "profiles.my smoke: invalid profile name 'my smoke'",
        id="profile-bad-name",
    ),
]


@pytest.mark.parametrize(("text", "line", "fragment"), ERRORS)
def test_validation_error(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MatrixError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message, message


def test_error_uses_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, _settings("repeats: 0"), name="given.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MatrixError, match=r"^given\.yaml:1: settings\.repeats: "):
        load("given.yaml")


def test_multiline_value_stays_one_line(tmp_path: Path) -> None:
    text = STACKS + MODELS + '  extra: {source: "hub\\nline", prompts: [x]}\n' + PROFILES
    with pytest.raises(MatrixError) as info:
        load_text(tmp_path, text)
    assert "\n" not in str(info.value)
    assert "got 'hub\\nline'" in str(info.value)


COMPARE_ERRORS = [
    pytest.param("compare: {memory: -0.1}", 10, "compare.memory: must be positive", id="mem-neg"),
    pytest.param("compare: {memory: 0}", 10, "compare.memory: must be positive", id="mem-zero"),
    pytest.param(
        'compare: {time: "10%"}', 10, "compare.time: expected a positive number, got '10%'",
        id="time-str",
    ),
    pytest.param("compare: {alpha: 1.5}", 10, "compare.alpha: expected a number between 0 and 1",
                 id="alpha-big"),
    pytest.param("compare: {alpha: 0}", 10, "compare.alpha: must be positive", id="alpha-zero"),
    pytest.param("compare: {min_repeats: 0}", 10, "compare.min_repeats: must be positive",
                 id="repeats-zero"),
    pytest.param("compare: {min_repeats: 2.5}", 10, "compare.min_repeats: expected a positive integer",
                 id="repeats-float"),
    pytest.param("compare: {memory_floor_mb: -1}", 10, "compare.memory_floor_mb: must be >= 0",
                 id="floor-neg"),
    pytest.param("compare: {memory_floor_mb: [1]}", 10, "compare.memory_floor_mb: expected a number >= 0",
                 id="floor-list"),
    pytest.param("compare: {fail_on: [memory, speed]}", 10,
                 "compare.fail_on[1]: expected one of memory, time, status, golden", id="fail-on-unknown"),
    pytest.param("compare: {fail_on: [status, status]}", 10, "compare.fail_on[1]: duplicate value",
                 id="fail-on-dup"),
    pytest.param("compare: {treshold: 0.1}", 10, "compare.treshold: unknown key 'treshold'",
                 id="unknown-key"),
    pytest.param("compare: [memory]", 10, "compare: expected a mapping, got a list", id="not-mapping"),
    pytest.param("compare:\n  memory: 0.1\n  time: nope\n", 12, "compare.time: expected a positive number",
                 id="line-of-value"),
]  # fmt: skip


@pytest.mark.parametrize(("section", "line", "fragment"), COMPARE_ERRORS)
def test_compare_validation_error(tmp_path: Path, section: str, line: int, fragment: str) -> None:
    path = write(tmp_path, VALID + section + ("" if section.endswith("\n") else "\n"))
    with pytest.raises(MatrixError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message, message


# --------------------------------------------------------------------------- control characters


def test_existing_environment_python_path_with_a_nul_byte_is_rejected(tmp_path: Path) -> None:
    """The fuzz test found it: `bin/py\\x00thon` was accepted as an interpreter path."""
    text = 'stacks:\n  - {id: env, install: false, python: "bin/py\\x00thon"}\n' + MODELS + PROFILES
    with pytest.raises(MatrixError) as info:
        load(write(tmp_path, text))
    message = str(info.value)
    assert message.splitlines() == [message]
    assert message.startswith(f"{tmp_path / 'm.yaml'}:2: stacks[0].python: "), message
    assert "control character U+0000" in message


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        pytest.param(
            STACKS
            + MODELS
            + '  extra: {source: local, path: "ck\\tpt", prompts: [x]}\n'
            + PROFILES,
            "models.extra.path",
            "control character U+0009",
            id="local-path",
        ),
        pytest.param(
            'stacks:\n  - {python: "3.11", transformers: "4.46.3", torch: "2.5.1",'
            ' find_links: ["wh\\x1beels"]}\n' + MODELS + PROFILES,
            "stacks[0].find_links[0]",
            "control character U+001B",
            id="find-links-folder",
        ),
        pytest.param(
            'stacks:\n  - {python: "3.11", transformers: "4.46.3", torch: "2.5.1",'
            ' id: "a\\u200bb"}\n' + MODELS + PROFILES,
            "stacks[0].id",
            "invalid id",
            id="stack-id-format-character",
        ),
        pytest.param(
            STACKS + 'models:\n  tiny-gpt2: {source: embedded, prompts: ["a\\x00b"]}\n'
            "  gpt2-124m: {source: preset, prompts: [hi]}\n" + PROFILES,
            "models.tiny-gpt2.prompts[0]",
            "NUL",
            id="prompt-nul",
        ),
        pytest.param(
            STACKS
            + MODELS
            + '  extra: {source: hub, repo: gpt2, revision: "ma\\x7fin", prompts: [x]}\n'
            + PROFILES,
            "models.extra.revision",
            "control character U+007F",
            id="hub-revision",
        ),
    ],
)
def test_control_characters_are_rejected(
    tmp_path: Path, text: str, path: str, fragment: str
) -> None:
    with pytest.raises(MatrixError) as info:
        load(write(tmp_path, text))
    message = str(info.value)
    assert message.splitlines() == [message]
    assert f": {path}: " in message, message
    assert fragment in message, message


def test_prompts_may_hold_newlines_and_tabs(tmp_path: Path) -> None:
    text = STACKS + 'models:\n  tiny-gpt2: {source: embedded, prompts: ["a\\nb\\tc"]}\n' + PROFILES
    assert load(write(tmp_path, text)).model("tiny-gpt2").prompts == ("a\nb\tc",)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("cells", "--stacks", "unknown"), "unknown stack id 'unknown'"),
        (("cells", "--repeats", "0"), "expected a positive integer"),
        (("validate", "/no/such/matrix.yaml"), "/no/such/matrix.yaml: no such file"),
    ],
    ids=["stacks", "repeats", "validate"],
)
def test_cli_bad_arguments(args: tuple[str, ...], fragment: str) -> None:
    """Through `python -m harness`: one line on stderr, exit code 2, nothing on stdout."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=repo, env=env, capture_output=True, text=True, encoding="utf-8", timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("harness: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr, result.stderr
