"""harness.config.matrix: the real matrix.yaml, the data model, cells and their ids."""

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
    # int8 through optimum-quanto: 0.2.6 is the last release that takes torch 2.5.
    assert first.pins == ("optimum-quanto==0.2.6", "setuptools")
    assert repo.stacks[-1].pins == ("optimum-quanto==0.2.7",)
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
    assert repo.settings.repeats == 4
    assert repo.settings.timeout_s == 600.0
    assert isinstance(repo.settings.timeout_s, float)
    assert repo.settings.mode == "forkserver"
    assert repo.settings.max_new_tokens == 20
    assert set(repo.profiles) == {"smoke", "default", "full", "axes"}
    assert repo.repeats("smoke") == 1
    assert repo.repeats("default") == 4
    assert repo.repeats("full") == 4


def test_repo_cell_counts(repo: Matrix) -> None:
    # Family presets: safetensors only, low_cpu_mem_usage omit and true. Batch 4: the
    # plainest scenario only, for tiny-gpt2 and the four tiny families (several prompts).
    default = (2 * 12) + (4 * 4) + 5
    assert len(repo.cells()) == len(repo.cells("default")) == 4 * default == 180
    assert len(repo.cells("smoke")) == 4 * 1 * 2 == 8
    full = 5 * (3 * 3 * 3 * 2) + 5 * (3 * 3 * 2)
    assert len(repo.cells("full")) == 4 * (full + 5 * 3)  # batch 4 in each dtype
    batch4 = [c for c in repo.cells("default") if c.scenario.batch == 4]
    assert {c.model.id for c in batch4} == {
        "tiny-gpt2",
        "tiny-llama",
        "tiny-qwen2",
        "tiny-neox",
        "tiny-t5",
    }
    assert {c.scenario.id for c in batch4} == {"st/fp32/lcmu=omit/dm=none/batch=4"}


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
    assert [c.model.id for c in cells[:26:13]] == ["tiny-gpt2", "gpt2-124m"]
    assert [c.scenario.id for c in cells[:4]] == [
        "st/fp32/lcmu=omit/dm=none",
        "st/fp32/lcmu=omit/dm=none/batch=4",
        "bin/fp32/lcmu=omit/dm=none",
        "st/fp32/lcmu=omit/dm=cpu",
    ]


def test_repo_full_axes(repo: Matrix) -> None:
    scenarios = {c.scenario for c in repo.cells("full")}
    assert {s.device_map for s in scenarios} == {None, "cpu", "auto"}
    assert {s.dtype for s in scenarios} == {"float32", "bfloat16", "float16"}
    assert {s.low_cpu_mem_usage for s in scenarios} == {None, False, True}
    assert {s.checkpoint_format for s in scenarios} == {"safetensors", "bin"}


def test_repo_axes_profile(repo: Matrix) -> None:
    scenarios = {c.scenario for c in repo.cells("axes")}
    assert {s.attn_implementation for s in scenarios} == {"default", "eager", "sdpa"}
    assert {s.quantization for s in scenarios} == {"none", "int8"}
    assert {(s.offload, s.device_map) for s in scenarios} == {("none", None), ("disk", "auto")}


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
    assert (
        len(repo.cells("full", models=["gpt2-1.5b", "tiny-gpt2"])) == 2 * 4 * 54 + 4 * 3
    )  # and tiny-gpt2 in batches of 4


def test_lookup_errors(repo: Matrix) -> None:
    with pytest.raises(MatrixError, match=r"^unknown stack id 'nope' \(known: tf4\.46\.3-"):
        repo.stack("nope")
    with pytest.raises(MatrixError, match=r"^unknown model id 'gpt3' \(known: gpt2-1\.5b, "):
        repo.model("gpt3")
    with pytest.raises(
        MatrixError, match=r"^unknown profile 'huge' \(known: axes, default, full, smoke\)"
    ):
        repo.cells("huge")
    with pytest.raises(MatrixError, match="unknown profile"):
        repo.repeats("huge")
    with pytest.raises(MatrixError, match="unknown model id 'gpt3'"):
        repo.cells(models=["gpt3"])
    with pytest.raises(MatrixError, match="unknown stack id 'x'"):
        repo.cells(stacks=["x"])


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


def test_later_axes_cross_like_the_others_and_disk_offload_needs_device_map_auto(
    tmp_path: Path,
) -> None:
    text = VALID.replace(
        "profiles:",
        "scenarios:\n  device_map: [none, auto]\n  batch: [1, 4]\n  attn_implementation: [default, eager]\n"
        "  quantization: [none, int8]\n  offload: [none, disk]\nprofiles:",
    )
    cells = load_text(tmp_path, text).cells("default", models=["tiny-gpt2"])
    scenarios = {c.scenario.id for c in cells}
    assert len(cells) == 2 * 2 * 2 * 2 + 1 * 2 * 2 * 2  # disk offload: with device_map auto only
    assert "st/fp32/lcmu=omit/dm=none/batch=4/attn=eager/q=int8" in scenarios
    assert "st/fp32/lcmu=omit/dm=auto/batch=4/offload=disk" in scenarios
    assert not any(c.scenario.offload == "disk" and c.scenario.device_map != "auto" for c in cells)


def test_an_include_rule_may_leave_the_later_axes_to_their_defaults(tmp_path: Path) -> None:
    rule = "include:\n  - {model: tiny-gpt2, low_cpu_mem_usage: true, device_map: cpu, dtype: float32, checkpoint_format: bin, batch: 4}\n"
    text = VALID.replace("profiles:", rule + "profiles:")
    added = [
        c
        for c in load_text(tmp_path, text).cells("default")
        if c.scenario.checkpoint_format == "bin"
    ]
    assert [c.scenario.id for c in added] == ["bin/fp32/lcmu=true/dm=cpu/batch=4"]
    assert added[0].scenario.quantization == "none"


@pytest.mark.parametrize(
    ("axes", "fragment"),
    [
        ("batch: [0]", "scenarios.batch[0]: must be positive"),
        ("attn_implementation: [flash]", "scenarios.attn_implementation[0]"),
        ("quantization: [int4]", "scenarios.quantization[0]"),
        ("offload: [cpu]", "scenarios.offload[0]"),
    ],
)
def test_bad_later_axes_are_one_line_errors(tmp_path: Path, axes: str, fragment: str) -> None:
    text = VALID.replace("profiles:", f"scenarios:\n  {axes}\nprofiles:")
    with pytest.raises(MatrixError) as info:
        load_text(tmp_path, text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
