"""Version adaptation and kernel counters of the worker, without torch."""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from harness.target import worker

if TYPE_CHECKING:
    from harness.target.contract import Job

REPO = Path(__file__).resolve().parents[2]
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


CVE_JOB = job(checkpoint_format="bin")
CVE_TEXT = (
    "Due to a serious vulnerability issue in `torch.load`, even with `weights_only=True`, we now "
    "require users to upgrade torch to at least v2.6 in order to use the function."
)


@pytest.mark.parametrize(
    ("exc", "refused"),
    [
        (ValueError(CVE_TEXT), True),  # the library's own refusal
        (MemoryError(), False),  # an OOM in a known combination is not a refusal
        (ValueError("Unable to load weights: file is corrupt"), False),  # a corrupt file
        (RuntimeError(CVE_TEXT), False),  # the right words from the wrong place
        (KeyError("transformer.h.0.attn"), False),  # a library bug
    ],
)
def test_unsupported_needs_the_librarys_own_exception(exc: BaseException, refused: bool) -> None:
    reason = worker.known_rejection(
        "5.5.4", "2.5.1", CVE_JOB, has_accelerate=True, has_cuda=False, exc=exc
    )
    assert (reason is not None) is refused


def test_each_known_refusal_matches_its_real_message() -> None:
    lcmu = job(device_map="cpu", low_cpu_mem_usage=False)
    cases = [
        ("4.46.3", lcmu, True, ValueError("Passing along a `device_map` requires `low_cpu_mem_usage=True`")),
        ("5.24.0", job(device_map="cpu"), False, ImportError(
            "Using a `device_map` or `tp_plan` requires `accelerate`. You can install it with `pip install accelerate`"
        )),
        ("5.24.0", job(device_map="cuda"), True, AssertionError("Torch not compiled with CUDA enabled")),
    ]  # fmt: skip
    for tf, scenario, accelerate, exc in cases:
        found = worker.known_rejection(
            tf, "2.13.0", scenario, has_accelerate=accelerate, has_cuda=False, exc=exc
        )
        assert found is not None, exc


def test_decode_rate_counts_tokens_after_the_first() -> None:
    assert worker._rate(11, 1.0, 2.0) == 10.0
    assert worker._rate(1, 1.0, 2.0) is None  # one token: no decode step
    assert worker._rate(5, None, 2.0) is None  # no token was streamed


def test_threads_are_pinned_and_reported() -> None:
    calls: dict[str, int] = {}

    def interop(_n: int) -> None:
        raise RuntimeError("cannot set number of interop threads after parallel work")

    torch_like = types.SimpleNamespace(
        set_num_threads=lambda n: calls.__setitem__("threads", n),
        set_num_interop_threads=interop,
        get_num_threads=lambda: calls.get("threads", 8),
        get_num_interop_threads=lambda: 4,
    )
    assert worker._pin_threads(torch_like, job(threads=2, interop_threads=1)) == (2, 4)


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
    assert state == {"pickle_load": "weights_only"}
    torch_like.load("ckpt.bin", weights_only=False)  # a caller turning it off is recorded
    assert state["pickle_load"] == "unsafe"


def test_pickle_loads_on_a_torch_without_weights_only_are_recorded_unsafe() -> None:
    state = worker.guard_torch_load(_load_with(weights_only_param=False))
    assert state["pickle_load"] == "unsafe"


def test_a_forked_child_prefaults_exactly_its_parents_file_pages(tmp_path: Path) -> None:
    # fork() does not copy file-backed page tables: without the prefault the child would
    # fault the parent's pages in during its run and count them as its own.
    data = tmp_path / "weights.bin"
    data.write_bytes(os.urandom(16 * 1024 * 1024))
    with data.open("rb") as fh, mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        for offset in range(0, 8 * 1024 * 1024, 4096):  # the parent touches the first half
            mapped[offset]
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: RssFile before and after, through the pipe
            code = 1
            try:
                before = worker._status_kib(("RssFile",))["RssFile"]
                pages, warning = worker.prefault_like(os.getppid())
                after = worker._status_kib(("RssFile",))["RssFile"]
                os.write(write_fd, json.dumps([before, after, pages, warning]).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            before, after, pages, warning = json.loads(pipe.read())
        assert os.waitpid(pid, 0)[1] == 0
    assert warning is None
    # At least the 8 MiB the parent touched, and not the 8 MiB it did not.
    assert pages * 4096 >= 8 * 1024 * 1024
    assert after - before >= 8 * 1024  # KiB
    assert after - before < 8 * 1024 + pages * 4  # no more than what was prefaulted


def test_an_unreadable_page_map_is_a_warning_not_a_crash() -> None:
    pages, warning = worker.prefault_like(2**22 + 12345)  # no such process
    assert pages == 0
    assert warning is not None
    assert "pagemap" in warning


def test_the_phase_switch_is_outside_the_decode_window() -> None:
    # Ending the first-token phase writes a file and reads /proc: decode time starts after it.
    streamer = worker._PhaseStreamer(lambda: time.sleep(0.05))
    streamer.put(None)  # the prompt
    streamer.put(None)  # the first new token: the switch runs here
    assert streamer.first_at is not None
    assert streamer.decode_from is not None
    assert streamer.decode_from - streamer.first_at >= 0.05


def test_custom_code_is_refused_unless_declared(tmp_path: Path) -> None:
    config = {"model_type": "gpt2", "auto_map": {"AutoModelForCausalLM": "modeling_evil.Evil"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    refused = worker.remote_code_refusal(job(model_path=str(tmp_path)))
    assert refused is not None
    assert "modeling_evil.Evil" in refused
    assert worker.remote_code_refusal(job(model_path=str(tmp_path), trust_remote_code=True)) is None
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert worker.remote_code_refusal(job(model_path=str(tmp_path))) is None
    assert worker.remote_code_refusal(job(model_path="org/name")) is None  # a hub id


def test_network_attempts_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    # Restored after the test: the worker patches the class for the rest of its process.
    monkeypatch.setattr(socket.socket, "connect", socket.socket.connect)
    monkeypatch.setattr(socket.socket, "connect_ex", socket.socket.connect_ex)
    counter = worker.count_connections()
    with socket.socket() as free:  # a port nothing listens on: refused at once
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    for _ in range(2):
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.connect(("127.0.0.1", port))
    with socket.socket() as sock:
        sock.connect_ex(("127.0.0.1", port))
    assert counter == [3]


def test_later_axes_become_keywords_only_off_their_defaults() -> None:
    plain = worker.load_kwargs("5.24.0", job(), FAKE_TORCH)
    assert not {"attn_implementation", "quantization_config", "max_memory"} & plain.keys()
    kw = worker.load_kwargs("5.24.0", job(attn_implementation="eager"), FAKE_TORCH)
    assert kw["attn_implementation"] == "eager"
    fake_tf = types.SimpleNamespace(QuantoConfig=lambda weights: ("quanto", weights))
    kw = worker.load_kwargs("4.46.3", job(quantization="int8"), FAKE_TORCH, fake_tf)
    assert kw["quantization_config"] == ("quanto", "int8")
    # Without the config class the string goes on, and from_pretrained refuses it itself.
    no_quanto = types.SimpleNamespace()
    assert (
        worker.load_kwargs("4.46.3", job(quantization="int8"), FAKE_TORCH, no_quanto)[
            "quantization_config"
        ]
        == "int8"
    )


def test_disk_offload_gives_the_cpu_the_share_it_is_told(tmp_path: Path) -> None:
    offload = job(offload="disk", offload_folder=str(tmp_path / "o"), max_memory_mb=4.0)
    kw = worker.load_kwargs("5.24.0", offload, FAKE_TORCH)
    assert kw["device_map"] == "auto"
    assert kw["max_memory"] == {"cpu": "4096KiB"}  # under 64 MiB: KiB, not a rounded MiB
    assert kw["offload_folder"] == str(tmp_path / "o")
    told = worker.load_kwargs("5.24.0", {**offload, "max_memory_mb": 819.2}, FAKE_TORCH)
    assert told["max_memory"] == {"cpu": "819MiB"}


@pytest.mark.parametrize(
    ("scenario", "exc", "expected"),
    [
        (
            {"attn_implementation": "sdpa"},
            ValueError(
                "T5ForConditionalGeneration does not support an attention implementation through torch.nn.functional.scaled_dot_product_attention yet."
            ),
            True,
        ),
        ({"attn_implementation": "sdpa"}, RuntimeError("does not support sdpa"), False),
        ({"attn_implementation": "eager"}, ValueError("shape mismatch"), False),
        (
            {"quantization": "int8"},
            ImportError(
                "Loading an optimum-quanto quantized model requires optimum-quanto library"
            ),
            True,
        ),
        ({"quantization": "int8"}, MemoryError("quanto"), False),
        # Both axes at once: the refusal is the one whose own error it is (4.46.3, T5).
        (
            {"quantization": "int8", "attn_implementation": "sdpa"},
            ValueError(
                "T5ForConditionalGeneration does not support an attention implementation through torch.nn.functional.scaled_dot_product_attention yet."
            ),
            True,
        ),
        (
            {},
            ImportError("Loading an optimum-quanto quantized model requires optimum-quanto"),
            False,
        ),
    ],
)
def test_attention_and_int8_refusals_need_the_librarys_own_error(
    scenario: dict[str, object], exc: BaseException, *, expected: bool
) -> None:
    found = worker.known_rejection(
        "4.46.3", "2.5.1", job(**scenario), has_accelerate=True, has_cuda=False, exc=exc
    )
    assert (found is not None) is expected


@pytest.mark.parametrize(
    ("ids", "stop", "steps"),
    [
        ([5, 6, 7], set(), 3),
        ([5, 0, 0, 0], {0}, 2),  # a batch row that ended: its pads are not output
        ([0, 0], {0}, 1),
        ([5, 6, 9], {9, 4}, 3),
    ],
)
def test_output_ends_at_the_first_end_of_sequence(
    ids: list[int], stop: set[int], steps: int
) -> None:
    assert worker._until_stop(ids, stop) == steps


def test_a_torch_without_weights_only_never_unpickles_unless_allowed() -> None:
    def old_load(f: object, map_location: object = None) -> object:  # torch < 1.13
        return f, map_location

    def new_load(f: object, map_location: object = None, *, weights_only: bool = False) -> object:
        return (f, weights_only) if map_location is None else None

    old = types.SimpleNamespace(load=old_load)
    state = worker.guard_torch_load(old)
    assert state["pickle_load"] == "unsafe"
    refused = worker.pickle_refusal(state, job(checkpoint_format="bin"), "1.12.1")
    assert refused is not None
    assert "allow_unsafe_pickle: true" in refused
    assert "\n" not in refused
    assert worker.pickle_refusal(state, job(allow_unsafe_pickle=True), "1.12.1") is None
    # Where torch has weights_only, it is forced on, and nothing is refused.
    new = types.SimpleNamespace(load=new_load)
    state = worker.guard_torch_load(new)
    assert new.load("ckpt") == ("ckpt", True)
    assert worker.pickle_refusal(state, job(checkpoint_format="bin"), "2.5.1") is None
    assert worker.pickle_refusal(None, job(), "1.12.1") is None  # safetensors: no pickle
