"""harness.measure.envs: where wheels come from (uv's variables, pip's configuration)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from harness.config.matrix import Stack
from harness.measure import envs

if TYPE_CHECKING:
    from pathlib import Path

PIP_CONFIG = """\
:env:.default-timeout='180'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.extra-index-url='file:///srv/idx-a/simple file:///srv/idx-b/simple'
global.find-links='{links}'
global.index-url='https://mirror.example.org/simple'
not a config line
"""


def test_parse_pip_config_unquotes_values() -> None:
    parsed = envs.parse_pip_config(PIP_CONFIG.format(links="/srv/wheels"))
    assert parsed == {
        ":env:.default-timeout": "180",
        "global.cert": "/etc/ssl/certs/ca-certificates.crt",
        "global.extra-index-url": "file:///srv/idx-a/simple file:///srv/idx-b/simple",
        "global.find-links": "/srv/wheels",
        "global.index-url": "https://mirror.example.org/simple",
    }


def test_pip_config_gives_find_links_that_exist_and_the_urls(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    text = PIP_CONFIG.format(links=f"{wheels} {tmp_path / 'missing'} https://x.example/links")
    found = envs.sources_from({}, text)
    assert found == envs.WheelSources(
        "pip config",
        find_links=(str(wheels), "https://x.example/links"),
        index_url="https://mirror.example.org/simple",
        extra_index_urls=("file:///srv/idx-a/simple", "file:///srv/idx-b/simple"),
    )
    # Only the find-links reach uv (see WheelSources.uv_args).
    assert found.uv_args() == [
        "--find-links",
        str(wheels),
        "--find-links",
        "https://x.example/links",
    ]
    assert found.as_json()["from"] == "pip config"


def test_pip_variables_win_over_pip_conf(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "conf").mkdir()
    text = f"global.find-links='{tmp_path / 'conf'}'\n:env:.find-links='{tmp_path / 'env'}'\n"
    assert envs.sources_from({}, text).find_links == (str(tmp_path / "env"),)


@pytest.mark.parametrize("var", envs.UV_SOURCE_VARS)
def test_uv_variables_set_means_pip_config_ignored(var: str, tmp_path: Path) -> None:
    environ = {var: "https://uv.example/simple"}
    found = envs.sources_from(environ, PIP_CONFIG.format(links=tmp_path))
    assert found.origin == "uv env"
    assert str(tmp_path) not in found.find_links
    assert found.uv_args() == []  # uv reads its own variables


def test_uv_variables_are_recorded() -> None:
    environ = {"UV_FIND_LINKS": "/srv/a /srv/b", "UV_INDEX_URL": "https://i.example/simple",
               "UV_EXTRA_INDEX_URL": "https://e.example/simple"}  # fmt: skip
    assert envs.sources_from(environ, None).as_json() == {
        "find_links": ["/srv/a", "/srv/b"],
        "index_url": "https://i.example/simple",
        "extra_index_urls": ["https://e.example/simple"],
        "from": "uv env",
        "uv_args": [],
    }


def test_wheel_sources_does_not_ask_pip_when_uv_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom() -> str:
        raise AssertionError("pip asked")

    monkeypatch.setattr(envs, "pip_config_list", boom)
    assert envs.wheel_sources({"UV_INDEX": "https://u.example/simple"}).origin == "uv env"


def test_no_configuration_is_defaults() -> None:
    assert envs.sources_from({}, "").origin == "defaults"
    assert envs.sources_from({}, None).as_json()["find_links"] == []


def test_install_command_passes_pip_find_links_to_uv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        envs, "wheel_sources", lambda: envs.WheelSources("pip config", (str(tmp_path),))
    )
    stack = Stack("s", "3.11", "4.46.3", "2.13.0")
    cmd = envs.install_command(stack, tmp_path / "python", "uv")
    assert cmd[:7] == ["uv", "pip", "install", "--python", str(tmp_path / "python"),
                       "--find-links", str(tmp_path)]  # fmt: skip
    # pip reads its own configuration: nothing added.
    assert "--find-links" not in envs.install_command(stack, tmp_path / "python", None)
