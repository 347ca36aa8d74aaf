"""harness.config.matrix: loading the real matrix.yaml, expanding cells, and every validation error."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.matrix import (
    FAIL_ON_CHOICES,
    PRESETS,
    Cell,
    CompareSettings,
    Matrix,
    MatrixError,
    Model,
    Scenario,
    Stack,
    load,
)

REPO_MATRIX = Path(__file__).resolve().parents[2] / "matrix.yaml"

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


def load_text(tmp_path: Path, text: str) -> Matrix:
    return load(write(tmp_path, text))


def stack(**kw: object) -> Stack:
    fields: dict[str, object] = {
        "id": "s",
        "python": "3.11",
        "transformers": "4.46.3",
        "torch": "2.5.1",
    }
    fields.update(kw)
    return Stack(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the real file


@pytest.fixture(scope="module")
def repo() -> Matrix:
    return load(REPO_MATRIX)


def test_repo_stacks(repo: Matrix) -> None:
    assert [s.id for s in repo.stacks] == [
        "tf4.46.3-torch2.5.1-py3.11",
        "tf4.57.6-torch2.8.0-py3.11",
        "tf5.5.4-torch2.5.1-py3.11",
        "tf5.24.0-torch2.13.0-py3.11",
    ]
    first = repo.stack("tf4.46.3-torch2.5.1-py3.11")
    assert (first.python, first.transformers, first.torch, first.accelerate) == (
        "3.11",
        "4.46.3",
        "2.5.1",
        "1.1.1",
    )
    assert first.pins == ()
    assert first.find_links == ()
    assert first.index_url is None
    assert first.torch_backend is None


def test_repo_models(repo: Matrix) -> None:
    assert [m.id for m in repo.models] == ["tiny-gpt2", *PRESETS]
    tiny = repo.model("tiny-gpt2")
    assert tiny == Model(
        id="tiny-gpt2",
        source="embedded",
        location="tiny-gpt2",
        prompts=("The lighthouse stood on", "Once a month a supply boat", "Near midnight he saw"),
    )
    assert repo.model("gpt2-1.5b").source == "preset"
    assert repo.model("gpt2-1.5b").location == "gpt2-1.5b"


def test_repo_settings_and_profiles(repo: Matrix) -> None:
    assert repo.path == REPO_MATRIX
    assert repo.settings.repeats == 3
    assert repo.settings.timeout_s == 600.0
    assert isinstance(repo.settings.timeout_s, float)
    assert repo.settings.mode == "forkserver"
    assert repo.settings.max_new_tokens == 20
    assert set(repo.profiles) == {"smoke", "default", "full"}
    assert repo.repeats("smoke") == 1
    assert repo.repeats("default") == 3
    assert repo.repeats("full") == 3


def test_repo_cell_counts(repo: Matrix) -> None:
    assert len(repo.cells()) == 4 * 3 * 12 == 144
    assert len(repo.cells("default")) == 144
    assert len(repo.cells("smoke")) == 4 * 1 * 2 == 8
    assert len(repo.cells("full")) == 4 * 5 * (3 * 3 * 3 * 2)


def test_repo_smoke_cells(repo: Matrix) -> None:
    cells = repo.cells("smoke")
    assert [c.id for c in cells[:2]] == [
        "tiny-gpt2/st/fp32/lcmu=omit/dm=none",
        "tiny-gpt2/st/fp32/lcmu=true/dm=none",
    ]
    assert [c.stack.id for c in cells[::2]] == [s.id for s in repo.stacks]
    assert all(c.scenario.max_new_tokens == 20 for c in cells)


def test_repo_default_cells_unique_and_ordered(repo: Matrix) -> None:
    cells = repo.cells("default")
    assert len(set(cells)) == len(cells)
    assert len({(c.stack.id, c.id) for c in cells}) == len(cells)
    # stack-major, then model, then scenarios in YAML order
    assert cells[0].stack.id == repo.stacks[0].id
    assert cells[-1].stack.id == repo.stacks[-1].id
    assert [c.model.id for c in cells[:36:12]] == ["tiny-gpt2", "gpt2-124m", "gpt2-355m"]
    assert [c.scenario.id for c in cells[:4]] == [
        "st/fp32/lcmu=omit/dm=none",
        "bin/fp32/lcmu=omit/dm=none",
        "st/fp32/lcmu=omit/dm=cpu",
        "bin/fp32/lcmu=omit/dm=cpu",
    ]


def test_repo_full_axes(repo: Matrix) -> None:
    scenarios = {c.scenario for c in repo.cells("full")}
    assert {s.device_map for s in scenarios} == {None, "cpu", "auto"}
    assert {s.dtype for s in scenarios} == {"float32", "bfloat16", "float16"}
    assert {s.low_cpu_mem_usage for s in scenarios} == {None, False, True}
    assert {s.checkpoint_format for s in scenarios} == {"safetensors", "bin"}


# --------------------------------------------------------------------------- ids, requirements


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (Scenario(None, None, "float32", "safetensors", 20), "st/fp32/lcmu=omit/dm=none"),
        (Scenario(True, None, "float32", "safetensors", 20), "st/fp32/lcmu=true/dm=none"),
        (Scenario(False, "cpu", "bfloat16", "bin", 5), "bin/bf16/lcmu=false/dm=cpu"),
        (Scenario(True, "auto", "float16", "bin", 1), "bin/fp16/lcmu=true/dm=auto"),
        (Scenario(None, "cuda", "float32", "safetensors", 1), "st/fp32/lcmu=omit/dm=cuda"),
    ],
)
def test_scenario_id(scenario: Scenario, expected: str) -> None:
    assert scenario.id == expected


def test_cell_id() -> None:
    model = Model("gpt2-355m", "preset", "gpt2-355m", ("x",))
    cell = Cell(stack(), model, Scenario(True, None, "float32", "safetensors", 20))
    assert cell.id == "gpt2-355m/st/fp32/lcmu=true/dm=none"


def test_requirements_pinned_accelerate() -> None:
    s = stack(accelerate="1.1.1", pins=("numpy<2", "tokenizers==0.20.3"))
    assert s.requirements() == (
        "torch==2.5.1",
        "transformers==4.46.3",
        "accelerate==1.1.1",
        "numpy<2",
        "tokenizers==0.20.3",
    )


def test_requirements_unpinned_accelerate_is_left_to_resolver() -> None:
    assert stack().requirements() == (
        "torch==2.5.1",
        "transformers==4.46.3",
        "accelerate",
    )
    bounded = stack(pins=("Accelerate<1",))
    assert bounded.requirements() == (
        "torch==2.5.1",
        "transformers==4.46.3",
        "Accelerate<1",
    )


def test_stack_options_and_explicit_id(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    text = (
        "stacks:\n"
        "  - id: nightly\n"
        '    python: "3.13"\n'
        '    transformers: "5.0.0rc1"\n'
        '    torch: "2.9.0+cpu"\n'
        "    pins: [numpy<2, \"tokenizers==0.20.3; python_version >= '3.9'\"]\n"
        "    find_links: [wheels, https://download.pytorch.org/whl/torch/]\n"
        "    index_url: https://download.pytorch.org/whl/cpu\n"
        "    torch_backend: cpu\n" + MODELS + PROFILES
    )
    matrix = load_text(tmp_path, text)
    s = matrix.stack("nightly")
    assert s.python == "3.13"
    assert s.torch == "2.9.0+cpu"
    assert s.accelerate is None
    assert s.pins == ("numpy<2", "tokenizers==0.20.3; python_version >= '3.9'")
    assert s.find_links == (
        str((tmp_path / "wheels").resolve()),
        "https://download.pytorch.org/whl/torch/",
    )
    assert s.index_url == "https://download.pytorch.org/whl/cpu"
    assert s.torch_backend == "cpu"
    assert s.requirements()[:3] == ("torch==2.9.0+cpu", "transformers==5.0.0rc1", "accelerate")


def test_local_and_hub_models(tmp_path: Path) -> None:
    text = (
        STACKS + "models:\n"
        "  mine: {source: local, path: ckpt/mine, prompts: [a], trust_remote_code: true}\n"
        "  abs: {source: local, path: /opt/models/x, prompts: [a]}\n"
        "  medium: {source: hub, repo: gpt2-medium, revision: main, prompts: [a, b]}\n"
        "  small: {source: preset, preset: gpt2-124m, prompts: [a]}\n"
        "  tiny: {source: embedded, fixture: tiny-gpt2, prompts: [a]}\n" + PROFILES
    )
    matrix = load_text(tmp_path, text)
    mine = matrix.model("mine")
    assert mine.location == str((tmp_path / "ckpt" / "mine").resolve())
    assert Path(mine.location).is_absolute()
    assert mine.trust_remote_code is True
    assert matrix.model("abs").location == str(Path("/opt/models/x").resolve())
    medium = matrix.model("medium")
    assert (medium.source, medium.location, medium.revision) == ("hub", "gpt2-medium", "main")
    assert medium.prompts == ("a", "b")
    assert medium.trust_remote_code is False
    assert matrix.model("small").location == "gpt2-124m"
    assert matrix.model("tiny").location == "tiny-gpt2"


def test_defaults_when_sections_omitted(tmp_path: Path) -> None:
    matrix = load_text(tmp_path, VALID)
    assert matrix.settings.repeats == 3
    assert matrix.settings.timeout_s == 600.0
    assert matrix.settings.mode == "forkserver"
    assert matrix.repeats("smoke") == 3
    # no scenarios section: one scenario (omit, none, float32, safetensors)
    assert [c.id for c in matrix.cells("smoke")] == [
        "tiny-gpt2/st/fp32/lcmu=omit/dm=none",
        "gpt2-124m/st/fp32/lcmu=omit/dm=none",
    ]


def test_max_new_tokens_override(tmp_path: Path) -> None:
    text = (
        "settings: {max_new_tokens: 7, mode: fresh, timeout_s: 1.5}\n"
        + STACKS
        + MODELS
        + "scenarios: {max_new_tokens: 9}\n"
        + "profiles:\n"
        + "  smoke: {scenarios: {max_new_tokens: 3}}\n"
        + "  default: {}\n"
        + "  full: {}\n"
    )
    matrix = load_text(tmp_path, text)
    assert matrix.settings.mode == "fresh"
    assert matrix.settings.timeout_s == 1.5
    assert {c.scenario.max_new_tokens for c in matrix.cells("smoke")} == {3}
    assert {c.scenario.max_new_tokens for c in matrix.cells("default")} == {9}


def test_yaml_spellings_of_axis_values(tmp_path: Path) -> None:
    text = (
        STACKS
        + MODELS
        + "scenarios:\n"
        + "  low_cpu_mem_usage: [omit, yes, False]\n"
        + "  device_map: [~, none, cpu, auto, cuda]\n"
        + "  dtype: bfloat16\n"
        + "  checkpoint_format: [bin]\n"
        + PROFILES
    )
    # `~` and `none` are the same value: the duplicate is an error
    with pytest.raises(MatrixError, match=r"m\.yaml:8: scenarios\.device_map\[1\]: duplicate"):
        load_text(tmp_path, text)
    matrix = load_text(tmp_path, text.replace("[~, none,", "[~,"))
    scenarios = [c.scenario for c in matrix.cells("default", models=["tiny-gpt2"])]
    assert [s.low_cpu_mem_usage for s in scenarios[::4]] == [None, True, False]
    assert [s.device_map for s in scenarios[:4]] == [None, "cpu", "auto", "cuda"]
    assert {s.dtype for s in scenarios} == {"bfloat16"}
    assert {s.checkpoint_format for s in scenarios} == {"bin"}


def test_merge_keys_and_anchors(tmp_path: Path) -> None:
    text = (
        "stacks:\n"
        '  - &base {python: "3.11", transformers: "4.46.3", torch: "2.5.1"}\n'
        '  - {<<: *base, transformers: "4.57.6"}\n'
        "models:\n"
        "  tiny-gpt2: {source: embedded, prompts: &p [hi, there]}\n"
        "  gpt2-124m: {source: preset, prompts: *p}\n" + PROFILES
    )
    matrix = load_text(tmp_path, text)
    assert [s.id for s in matrix.stacks] == [TF4, "tf4.57.6-torch2.5.1-py3.11"]
    assert matrix.model("gpt2-124m").prompts == ("hi", "there")


# --------------------------------------------------------------------------- selection and rules


def rules_matrix(tmp_path: Path, rules: str, profiles: str = PROFILES) -> Matrix:
    text = (
        TWO_STACKS
        + MODELS
        + "scenarios:\n"
        + "  low_cpu_mem_usage: [omit, true]\n"
        + "  device_map: [none]\n"
        + "  dtype: [float32]\n"
        + "  checkpoint_format: [safetensors, bin]\n"
        + rules
        + profiles
    )
    return load_text(tmp_path, text)


def ids(cells: list[Cell]) -> list[str]:
    return [f"{c.stack.id}:{c.id}" for c in cells]


def test_exclude_removes_matching_cells(tmp_path: Path) -> None:
    matrix = rules_matrix(
        tmp_path,
        "exclude:\n"
        "  - {model: gpt2-124m, checkpoint_format: bin}\n"
        f"  - {{stack: {TF457}, low_cpu_mem_usage: [true]}}\n",
    )
    cells = ids(matrix.cells())
    assert len(cells) == 2 * 2 * 4 - 4 - 4 + 1  # the two rules overlap in one cell
    assert f"{TF4}:gpt2-124m/bin/fp32/lcmu=omit/dm=none" not in cells
    assert f"{TF4}:gpt2-124m/st/fp32/lcmu=true/dm=none" in cells
    assert not [c for c in cells if c.startswith(TF457) and "lcmu=true" in c]


def test_include_adds_cells_for_all_or_one_stack(tmp_path: Path) -> None:
    matrix = rules_matrix(
        tmp_path,
        "exclude:\n"
        "  - {checkpoint_format: bin}\n"
        "include:\n"
        "  - {model: tiny-gpt2, low_cpu_mem_usage: false, device_map: cpu,"
        " dtype: [bfloat16, float16], checkpoint_format: bin}\n"
        f"  - {{stack: {TF457}, model: gpt2-124m, low_cpu_mem_usage: true, device_map: none,"
        " dtype: float32, checkpoint_format: bin}\n"
        # already present: must not be duplicated
        "  - {model: tiny-gpt2, low_cpu_mem_usage: omit, device_map: none, dtype: float32,"
        " checkpoint_format: safetensors}\n",
    )
    cells = ids(matrix.cells())
    assert len(cells) == len(set(cells))
    assert cells[-5:] == [
        f"{TF4}:tiny-gpt2/bin/bf16/lcmu=false/dm=cpu",
        f"{TF4}:tiny-gpt2/bin/fp16/lcmu=false/dm=cpu",
        f"{TF457}:tiny-gpt2/bin/bf16/lcmu=false/dm=cpu",
        f"{TF457}:tiny-gpt2/bin/fp16/lcmu=false/dm=cpu",
        f"{TF457}:gpt2-124m/bin/fp32/lcmu=true/dm=none",
    ]
    assert len(cells) == 2 * 2 * 2 + 5
    # include cells only appear where the profile (or caller) selects the model and stack
    assert ids(matrix.cells(models=["gpt2-124m"]))[-1] == cells[-1]
    assert not [c for c in ids(matrix.cells(stacks=[TF4])) if c.startswith(TF457)]


def test_include_restores_excluded_cell(tmp_path: Path) -> None:
    matrix = rules_matrix(
        tmp_path,
        "exclude: [{model: gpt2-124m}]\n"
        "include:\n"
        f"  - {{stack: {TF4}, model: gpt2-124m, low_cpu_mem_usage: omit, device_map: none,"
        " dtype: float32, checkpoint_format: bin}\n",
    )
    assert ids(matrix.cells(models=["gpt2-124m"])) == [
        f"{TF4}:gpt2-124m/bin/fp32/lcmu=omit/dm=none"
    ]


def test_profile_rules_and_selection(tmp_path: Path) -> None:
    matrix = rules_matrix(
        tmp_path,
        "exclude: [{dtype: bfloat16}]\n",
        "profiles:\n"
        "  smoke:\n"
        f"    stacks: [{TF457}]\n"
        "    models: [gpt2-124m]\n"
        "    scenarios: {low_cpu_mem_usage: [true], dtype: [float32, bfloat16]}\n"
        "    exclude: [{checkpoint_format: bin}]\n"
        "    include:\n"
        "      - {model: gpt2-124m, low_cpu_mem_usage: false, device_map: cpu, dtype: float16,"
        " checkpoint_format: bin}\n"
        "    repeats: 2\n"
        "  default: {}\n"
        "  full: {models: [gpt2-124m, tiny-gpt2], stacks: [tf4.57.6-torch2.8.0-py3.12, "
        + TF4
        + "]}\n",
    )
    assert ids(matrix.cells("smoke")) == [
        f"{TF457}:gpt2-124m/st/fp32/lcmu=true/dm=none",
        f"{TF457}:gpt2-124m/bin/fp16/lcmu=false/dm=cpu",
    ]
    assert matrix.repeats("smoke") == 2
    assert matrix.profiles["smoke"].models == ("gpt2-124m",)
    assert matrix.profiles["default"].models == ()
    # profile order of models and stacks is kept
    full = matrix.cells("full")
    assert [c.stack.id for c in full[:: len(full) // 2]] == [TF457, TF4]
    assert [c.model.id for c in full[:8:4]] == ["gpt2-124m", "tiny-gpt2"]


def test_cells_models_and_stacks_arguments(repo: Matrix) -> None:
    cells = repo.cells("default", models=["gpt2-124m"], stacks=["tf5.5.4-torch2.5.1-py3.11"])
    assert len(cells) == 12
    assert {(c.model.id, c.stack.id) for c in cells} == {("gpt2-124m", "tf5.5.4-torch2.5.1-py3.11")}
    # a model the profile does not select narrows to nothing
    assert repo.cells("smoke", models=["gpt2-124m"]) == []
    assert len(repo.cells("full", models=["gpt2-1.5b", "tiny-gpt2"])) == 2 * 4 * 54


def test_lookup_errors(repo: Matrix) -> None:
    with pytest.raises(MatrixError, match=r"^unknown stack id 'nope' \(known: tf4\.46\.3-"):
        repo.stack("nope")
    with pytest.raises(MatrixError, match=r"^unknown model id 'gpt3' \(known: gpt2-1\.5b, "):
        repo.model("gpt3")
    with pytest.raises(
        MatrixError, match=r"^unknown profile 'huge' \(known: default, full, smoke\)"
    ):
        repo.cells("huge")
    with pytest.raises(MatrixError, match="unknown profile"):
        repo.repeats("huge")
    with pytest.raises(MatrixError, match="unknown model id 'gpt3'"):
        repo.cells(models=["gpt3"])
    with pytest.raises(MatrixError, match="unknown stack id 'x'"):
        repo.cells(stacks=["x"])


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
        MODELS + PROFILES, 1, "(top level): missing required key 'stacks'", id="missing-stacks"
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
        "settings.repeat: unknown key 'repeat' (did you mean 'repeats'? allowed: repeats, timeout_s, mode, max_new_tokens, golden_tolerance)",
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
        "stacks: must list at least one stack",
        id="stacks-empty",
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
        "models.gpt2-2b: unknown preset 'gpt2-2b' (known: gpt2-1.5b, gpt2-124m, gpt2-355m, gpt2-774m)",
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
        "models.gpt2-355m.repo: not allowed for source 'preset' (allowed: source, prompts, preset)",
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
        "include[0]: an include rule needs model and every scenario axis (missing: low_cpu_mem_usage, device_map, checkpoint_format)",
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


def test_every_section_of_the_error_table_is_exercised() -> None:
    # The brief's checklist: each kind of mistake has at least one case above.
    wanted = [
        "YAML syntax error",
        "unknown key",
        "expected a version string",
        "got true (a YAML boolean)",
        "must not be empty",
        "duplicate stack id",
        "duplicate key 'tiny-gpt2'",
        "invalid version",
        "invalid requirement",
        "from 3.8 to 3.14",
        "missing required key 'stacks'",
        "missing required profile",
        "missing required key 'source'",
        "needs the key 'path'",
        "needs the key 'repo'",
        "expected one of embedded, preset, local, hub",
        "unknown preset",
        "profiles.smoke.models[0]: unknown model",
        "profiles.smoke.stacks[0]: unknown stack",
        "include[0].model: unknown model",
        "settings.repeats: must be positive",
        "settings.timeout_s: must be positive",
        "max_new_tokens: must be positive",
        "settings.mode: expected one of forkserver, fresh",
        "selects no cells",
    ]
    fragments = " | ".join(str(p.values[2]) for p in ERRORS)
    assert [w for w in wanted if w not in fragments] == []


def test_golden_tolerance_defaults_and_overrides(tmp_path: Path) -> None:
    text = (REPO_MATRIX.read_text()).replace(
        "  max_new_tokens: 20\n", "  max_new_tokens: 20\n  golden_tolerance: {bfloat16: 0.75}\n", 1
    )
    path = tmp_path / "m.yaml"
    path.write_text(text)
    tol = load(path).settings.golden_tolerance
    assert dict(tol) == {"float32": 0.01, "bfloat16": 0.75, "float16": 0.1}
    path.write_text(text.replace("bfloat16: 0.75", "bfloat16: -1"))
    with pytest.raises(
        MatrixError, match=r"settings\.golden_tolerance\.bfloat16: must be positive"
    ):
        load(path)
    path.write_text(text.replace("bfloat16: 0.75", "int8: 1"))
    with pytest.raises(MatrixError, match="unknown key 'int8'"):
        load(path)


# --------------------------------------------------------------------------- compare


def test_compare_defaults_when_omitted(tmp_path: Path) -> None:
    settings = load_text(tmp_path, VALID).compare
    assert settings == CompareSettings()
    assert (settings.memory, settings.time, settings.alpha, settings.min_repeats) == (
        0.05,
        0.10,
        0.05,
        3,
    )
    assert settings.fail_on == ("memory", "status", "golden")


def test_compare_overrides(tmp_path: Path) -> None:
    text = VALID + (
        "compare:\n"
        "  memory: 0.02\n"
        "  time: 0.25\n"
        "  alpha: 0.01\n"
        "  min_repeats: 5\n"
        "  memory_floor_mb: 0\n"
        "  fail_on: [peak_mb, status, time]\n"
    )
    settings = load_text(tmp_path, text).compare
    assert settings == CompareSettings(
        memory=0.02,
        time=0.25,
        alpha=0.01,
        min_repeats=5,
        memory_floor_mb=0.0,
        fail_on=("peak_mb", "status", "time"),
    )


def test_compare_fail_on_scalar_and_empty(tmp_path: Path) -> None:
    assert load_text(tmp_path, VALID + "compare: {fail_on: golden}\n").compare.fail_on == (
        "golden",
    )
    # An empty list means: report, never fail.
    assert load_text(tmp_path, VALID + "compare: {fail_on: []}\n").compare.fail_on == ()
    assert load_text(tmp_path, VALID + "compare:\n").compare == CompareSettings()


def test_repo_matrix_compare_section_is_valid(repo: Matrix) -> None:
    assert set(repo.compare.fail_on) <= set(FAIL_ON_CHOICES)


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


def test_existing_environment_stacks(tmp_path: Path) -> None:
    text = REPO_MATRIX.read_text().replace(
        "stacks:\n",
        "stacks:\n  - {id: here, python: venv/bin/python, install: false}\n",
        1,
    )
    path = tmp_path / "m.yaml"
    path.write_text(text)
    here = load(path).stack("here")
    assert here.install is False
    assert here.python == str(tmp_path / "venv" / "bin" / "python")
    # A venv's python is a symlink: the path must stay inside the venv, not follow it.
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    assert load(path).stack("here").python == str(tmp_path / "venv" / "bin" / "python")
    path.write_text(text.replace("{id: here, ", "{"))
    with pytest.raises(
        MatrixError, match=r"stacks\[0\]\.id: an existing environment .* needs an id"
    ):
        load(path)
    path.write_text(text.replace("install: false}", "install: false, torch: '2.5.1'}"))
    with pytest.raises(MatrixError, match=r"stacks\[0\]\.torch: an existing environment"):
        load(path)
    path.write_text(text.replace("install: false}", "install: true}"))
    with pytest.raises(MatrixError, match="missing required key 'transformers'"):
        load(path)
