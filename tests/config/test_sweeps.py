"""harness.config.sweeps: release ranges become ordinary stacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from harness.config import ids, sweeps
from harness.config.matrix import load

if TYPE_CHECKING:
    from pathlib import Path

# A slice of transformers' real release history, out of order, with a pre-release.
LISTED = [
    "4.53.0", "4.48.0", "4.48.3", "4.49.0", "4.50.0", "4.50.3", "4.51.0", "4.51.3",
    "4.52.4", "4.52.0", "4.53.3", "5.0.0rc1", "5.0.0", "5.1.0", "5.2.0", "5.2.1",
]  # fmt: skip
MODELS = "models:\n  tiny-gpt2: {source: embedded, prompts: [hi]}\n"
PROFILES = "profiles: {smoke: {}, default: {}, full: {}}\n"


def sweep(**kw: object) -> sweeps.SweepEntry:
    base: dict[str, object] = {"transformers": ">=4.48,<5.3", "torch": ["2.13.0"], "python": "3.11"}
    return sweeps.SweepEntry.model_validate({**base, **kw})


def test_latest_patch_per_minor_is_the_default() -> None:
    assert sweep().releases(LISTED) == [
        "4.48.3", "4.49.0", "4.50.3", "4.51.3", "4.52.4", "4.53.3", "5.0.0", "5.1.0", "5.2.1",
    ]  # fmt: skip


def test_all_keeps_every_final_in_range_in_version_order() -> None:
    got = sweep(transformers=">=4.51,<5.1", pick="all").releases(LISTED)
    assert got == ["4.51.0", "4.51.3", "4.52.0", "4.52.4", "4.53.0", "4.53.3", "5.0.0"]


@pytest.mark.parametrize(
    ("every", "expected"),
    [
        (1, ["4.50.0", "4.50.3", "4.51.0", "4.51.3"]),
        (2, ["4.50.0", "4.51.0", "4.51.3"]),  # the newest always counts
        (3, ["4.50.0", "4.51.3"]),
        (9, ["4.50.0", "4.51.3"]),
    ],
)
def test_every_n_keeps_both_ends(every: int, expected: list[str]) -> None:
    assert sweep(transformers=">=4.50,<4.52", pick={"every": every}).releases(LISTED) == expected


def test_stacks_cross_torch_and_skip_hand_listed_ids() -> None:
    two = sweep(transformers=">=5.1,<5.3", torch=["2.5.1", "2.13.0"])
    hand = ids.stack_id("5.1.0", "2.5.1", "3.11")
    made = sweeps.stacks([two], lambda _: LISTED, known=[hand])
    assert [m["id"] for m in made] == [
        ids.stack_id("5.1.0", "2.13.0", "3.11"),
        ids.stack_id("5.2.1", "2.5.1", "3.11"),
        ids.stack_id("5.2.1", "2.13.0", "3.11"),
    ]
    assert {m["python"] for m in made} == {"3.11"}


def test_a_matrix_of_sweeps_alone(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "stacks: []\n"
        "sweeps:\n"
        '  - {transformers: ">=4.48,<4.52", torch: ["2.13.0"], python: "3.11",'
        ' pins: ["optimum-quanto==0.2.7"]}\n' + MODELS + PROFILES,
        encoding="utf-8",
    )
    matrix = load(path)
    assert matrix.stacks == ()
    asked: list[str] = []

    def listing(package: str) -> list[str]:
        asked.append(package)
        return LISTED

    swept = matrix.swept(listing)
    assert asked == ["transformers"]
    assert [s.transformers for s in swept.stacks] == ["4.48.3", "4.49.0", "4.50.3", "4.51.3"]
    first = swept.stacks[0]
    assert first.id == "tf4.48.3-torch2.13.0-py3.11"
    assert first.requirements() == (
        "torch==2.13.0", "transformers==4.48.3", "accelerate", "optimum-quanto==0.2.7",
    )  # fmt: skip
    assert len(swept.cells("smoke")) == 4 * len(swept.cells("smoke", stacks=[first.id]))


def test_a_sweep_matching_nothing_leaves_the_hand_listed_stacks(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        'stacks:\n  - {python: "3.11", transformers: "4.46.3", torch: "2.5.1"}\n'
        'sweeps:\n  - {transformers: ">=9", torch: ["2.13.0"], python: "3.11"}\n'
        + MODELS
        + PROFILES,
        encoding="utf-8",
    )
    swept = load(path).swept(lambda _: LISTED)
    assert [s.id for s in swept.stacks] == ["tf4.46.3-torch2.5.1-py3.11"]
