"""Browser-test helper: open a page in the shared Chromium and collect what went wrong on it.

A plain module (not conftest.py), imported by the browser tests as recordkit is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def open_page(
    browser: Any, path: Path, width: int, height: int, *, every_message: bool = False
) -> tuple[Any, list[str]]:
    """The page at `path` and its problems: console errors and warnings (every console message
    with every_message), uncaught errors, dialogs (an injected alert) and failed requests."""
    page = browser.new_page(viewport={"width": width, "height": height})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if every_message or
            m.type in ("error", "warning") else None)  # fmt: skip
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
    page.on("requestfailed", lambda r: problems.append(f"requestfailed: {r.url}"))
    page.goto(path.as_uri())
    return page, problems
