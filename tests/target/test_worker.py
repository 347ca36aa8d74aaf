"""Version adaptation and kernel counters of the worker, without torch."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, cast

import pytest

from harness.target import worker

if TYPE_CHECKING:
    from harness.target.contract import Job

FAKE_TORCH = types.SimpleNamespace(float32="f32", bfloat16="bf16", float16="f16")


def job(**kw: object) -> Job:
    base: dict[str, object] = {
        "model_path": "m",
        "tokenizer_path": "m",
        "prompts": ["p"],
        "dtype": "float32",
        "low_cpu_mem_usage": None,
        "device_map": None,
        "checkpoint_format": "safetensors",
        "max_new_tokens": 4,
        "trust_remote_code": False,
        "revision": None,
        "sample_interval_s": 0.002,
    }
    base.update(kw)
    return cast("Job", base)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4.46.3", (4, 46, 3)),
        ("2.5.1+cu124", (2, 5, 1)),
        ("2.13.0+cpu", (2, 13, 0)),
        ("5.0.0rc1", (5, 0, 0)),
        ("4.57.0.dev0", (4, 57, 0)),
    ],
)
def test_parse_version(text: str, expected: tuple[int, ...]) -> None:
    assert worker.parse_version(text) == expected


@pytest.mark.parametrize(
    ("tf", "kw"),
    [
        ("4.46.3", "torch_dtype"),
        ("4.55.4", "torch_dtype"),
        ("4.56.0", "dtype"),
        ("5.24.0", "dtype"),
    ],
)
def test_dtype_keyword_renamed_in_4_56(tf: str, kw: str) -> None:
    kwargs = worker.load_kwargs(tf, job(dtype="bfloat16"), FAKE_TORCH)
    assert kwargs[kw] == "bf16"
    assert {"dtype", "torch_dtype"} - {kw} & kwargs.keys() == set()


def test_low_cpu_mem_usage_passed_only_when_set() -> None:
    assert "low_cpu_mem_usage" not in worker.load_kwargs("4.46.3", job(), FAKE_TORCH)
    assert (
        worker.load_kwargs("4.46.3", job(low_cpu_mem_usage=False), FAKE_TORCH)["low_cpu_mem_usage"]
        is False
    )
    assert worker.load_kwargs("5.5.4", job(low_cpu_mem_usage=True), FAKE_TORCH)["low_cpu_mem_usage"]


def test_device_map_format_and_remote_code() -> None:
    kw = worker.load_kwargs("4.57.6", job(device_map="cpu", checkpoint_format="bin"), FAKE_TORCH)
    assert kw["device_map"] == "cpu"
    assert kw["use_safetensors"] is False
    assert "trust_remote_code" not in kw
    assert worker.load_kwargs("4.57.6", job(trust_remote_code=True), FAKE_TORCH)[
        "trust_remote_code"
    ]


@pytest.mark.parametrize(
    ("tf", "torch", "scenario", "rejected"),
    [
        ("4.46.3", "2.5.1", {"device_map": "cpu", "low_cpu_mem_usage": False}, True),
        ("4.50.3", "2.5.1", {"device_map": "cpu", "low_cpu_mem_usage": False}, True),
        ("4.51.0", "2.5.1", {"device_map": "cpu", "low_cpu_mem_usage": False}, False),
        ("4.46.3", "2.5.1", {"device_map": "cpu", "low_cpu_mem_usage": None}, False),
        ("4.52.0", "2.5.1", {"checkpoint_format": "bin"}, True),
        ("5.5.4", "2.5.1+cu124", {"checkpoint_format": "bin"}, True),
        ("5.5.4", "2.6.0", {"checkpoint_format": "bin"}, False),
        ("4.51.3", "2.5.1", {"checkpoint_format": "bin"}, False),
    ],
)
def test_known_rejections(tf: str, torch: str, scenario: dict[str, object], rejected: bool) -> None:
    reason = worker.known_rejection(tf, torch, job(**scenario), has_accelerate=True, has_cuda=False)
    assert (reason is not None) is rejected


def test_device_map_without_accelerate_or_cuda() -> None:
    assert worker.known_rejection(
        "5.24.0", "2.13.0", job(device_map="cpu"), has_accelerate=False, has_cuda=False
    )
    assert worker.known_rejection(
        "5.24.0", "2.13.0", job(device_map="cuda"), has_accelerate=True, has_cuda=False
    )
    assert (
        worker.known_rejection(
            "5.24.0", "2.13.0", job(device_map="cuda"), has_accelerate=True, has_cuda=True
        )
        is None
    )


def test_memory_counters_track_a_real_allocation() -> None:
    mem = worker.Memory()
    assert mem.method == "clear_refs"  # Linux, root or not: clear_refs is writable by the owner
    before = mem.snapshot()
    sampler = worker.AnonSampler(0.001)
    sampler.take_peak()
    mem.reset()
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    after = mem.snapshot()
    peak = sampler.take_peak()
    assert after["hwm_mb"] is not None
    assert before["rss_mb"] is not None
    assert after["hwm_mb"] - before["rss_mb"] >= 60
    assert after["anon_mb"] is not None
    assert before["anon_mb"] is not None
    assert after["anon_mb"] - before["anon_mb"] >= 60
    assert peak is not None
    assert peak >= after["anon_mb"] - 1
    del block
    mem.reset()
    # After the reset the high-water mark falls back to the current RSS.
    assert mem.snapshot()["hwm_mb"] < after["hwm_mb"] - 30  # type: ignore[operator]


def test_environment_reads_installed_versions() -> None:
    env = worker.environment()
    assert str(env["versions"]["python"]).count(".") == 2
    assert env["machine"]["cores"] >= 1
    assert any(p.lower().startswith("pyyaml==") for p in worker.installed_packages())


def _load_with(weights_only_param: bool) -> types.SimpleNamespace:
    def load(path: str, weights_only: bool = False) -> tuple[str, bool]:
        return path, weights_only

    def old_load(path: str) -> tuple[str, None]:
        return path, None

    return types.SimpleNamespace(load=load if weights_only_param else old_load)


def test_pickle_loads_are_restricted_where_torch_can() -> None:
    torch_like = _load_with(weights_only_param=True)
    state = worker.guard_torch_load(torch_like)
    assert torch_like.load("ckpt.bin") == ("ckpt.bin", True)
    assert state == {"pickle_load": "weights_only", "calls": 1}
    torch_like.load("ckpt.bin", weights_only=False)  # a caller turning it off is recorded
    assert state["pickle_load"] == "unsafe"


def test_pickle_loads_on_a_torch_without_weights_only_are_recorded_unsafe() -> None:
    state = worker.guard_torch_load(_load_with(weights_only_param=False))
    assert state["pickle_load"] == "unsafe"
