"""compat.html (per model, transformers by torch releases, a block per stack with its worst state
and a per-scenario drill-down) and badge.svg. No script: it opens from file:// and any host, reads
on a phone, and its Content-Security-Policy forbids scripts, so a missed escape could not run one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import quote

from harness.report import badge, heatmap
from harness.report.compat_cells import (
    BADGE_LABEL,
    GOLDEN_MISMATCH,
    STATES,
    Grid,
    StackCell,
    grids,
    stack_cells,
    transformers_badge,
    works,
)
from harness.report.dashboard import e
from harness.report.tables import plural, short

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from harness.records import Record

PAGE, BADGE = "compat.html", "badge.svg"
MESSAGE_CHARS = 600  # longer messages are cut in the page; the records keep them whole
MEANING = {
    "ok": "ran, and the output matched its golden (or drifted within float noise)",
    "unsupported": "the library itself refused the combination",
    GOLDEN_MISMATCH: "ran, but the output differs from its golden",
    "install_error": "the stack could not be installed",
    "error": "the load or generate raised",
    "timeout": "ran out of time",
    "killed": "killed, e.g. over its memory budget",
}


def _colour(state: str) -> str:
    """The dashboard heatmap's colour for the same state, so both pages agree."""
    status, golden = ("ok", "mismatch") if state == GOLDEN_MISMATCH else (state, "match")
    return dict(heatmap.STATES)[heatmap.state_of(status, golden)]


def css_class(state: str) -> str:
    return "st-" + state.replace(" ", "-").replace("_", "-")


STYLE = """*{box-sizing:border-box}
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 14px;
color:#222;overflow-wrap:anywhere}
nav{display:flex;flex-wrap:wrap;gap:16px;padding:10px 0;border-bottom:1px solid #ddd}
h1{font-size:1.5em;margin:.6em 0 .3em}h2{font-size:1.2em;margin:1.2em 0 .3em}
code{font-family:ui-monospace,monospace;font-size:12px}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;padding:0;list-style:none}
.legend li{border-left:5px solid var(--c);padding-left:6px}
.scroll{overflow-x:auto;max-width:100%;border:1px solid #ddd;margin:8px 0 20px}
table.grid{border-collapse:separate;border-spacing:0;overflow-wrap:normal}
.grid th,.grid td{border-right:1px solid #ddd;border-bottom:1px solid #ddd;padding:4px 6px;
text-align:left;vertical-align:top}
.grid thead th{background:#f4f4f4;white-space:nowrap}
.grid th[scope=row],.grid thead th:first-child{position:sticky;left:0;z-index:1;
background:#f4f4f4;white-space:nowrap}
.grid td.none{color:#999}
.stack{border-left:5px solid var(--c);background:color-mix(in srgb,var(--c) 14%,#fff);
padding:2px 6px;margin:2px 0;min-width:9em}
.stack summary{cursor:pointer;white-space:nowrap}
.stack .state{font-weight:600}.stack .py{color:#555;font-size:12px}
.why{margin:4px 0;max-width:32em;overflow-wrap:anywhere}
table.scen{border-collapse:collapse;font-size:12px;margin:4px 0;background:#fff}
.scen td,.scen th{border:1px solid #ddd;padding:2px 5px;text-align:left;vertical-align:top}
.scen td.msg{min-width:14em;max-width:30em;overflow-wrap:anywhere}
@media (max-width:600px){body{font-size:13px;padding:0 8px}
.scen td.msg{min-width:10em;max-width:16em}}
""" + "".join(f".{css_class(s)}{{--c:{_colour(s)}}}" for s in STATES)


def _scenarios(cell: StackCell) -> str:
    rows = "".join(
        f'<tr data-scenario="{e(s.scenario)}" data-status="{e(s.state)}">'
        f"<td><code>{e(s.scenario)}</code></td><td>{e(s.statuses)}</td>"
        f"<td>{e(s.golden or '-')}</td>"
        f'<td class="msg">{e(short(s.reason, MESSAGE_CHARS))}</td></tr>'
        for s in cell.scenarios
    )
    head = "<tr><th>scenario</th><th>runs</th><th>golden</th><th>message</th></tr>"
    return f'<table class="scen"><thead>{head}</thead><tbody>{rows}</tbody></table>'


def _block(cell: StackCell, link: str | None) -> str:
    count = f"{cell.ok}/{cell.total}"
    every = "the only scenario" if cell.total == 1 else f"all {cell.total} scenarios"
    title = short(cell.reason, MESSAGE_CHARS) if cell.state != "ok" else f"ok: {every}"
    why = f'<p class="why">{e(title)}</p>' if cell.state != "ok" else ""
    records = f'<a href="{e(link)}">records</a> · ' if link else ""
    data = (
        f'data-stack="{e(cell.stack)}" data-model="{e(cell.model)}" '
        f'data-status="{e(cell.state)}" data-count="{count}" '
        f'data-transformers="{e(cell.transformers)}" data-torch="{e(cell.torch)}" '
        f'data-python="{e(cell.python)}"'
    )
    return (
        f'<div class="stack {css_class(cell.state)}" {data}><details>'
        f'<summary title="{e(title)}"><span class="state">{e(cell.state)}</span> '
        f'<span class="count">{count}</span> <span class="py">py{e(cell.python)}</span></summary>'
        f"{why}<p>{records}<code>{e(cell.stack)}</code> · {e(cell.installed)}</p>"
        f"{_scenarios(cell)}</details></div>"
    )


def _grid(grid: Grid, links: Mapping[str, str]) -> str:
    head = "".join(f'<th scope="col">{e(t)}</th>' for t in grid.torch)
    rows = []
    for tf in grid.transformers:
        tds = []
        for torch in grid.torch:
            blocks = grid.blocks.get((tf, torch), ())
            inner = "".join(_block(c, links.get(c.stack)) for c in blocks)
            tds.append(f"<td>{inner}</td>" if blocks else '<td class="none">not run</td>')
        rows.append(f'<tr><th scope="row">{e(tf)}</th>{"".join(tds)}</tr>')
    label = e(f"{grid.model}: transformers by torch")
    return (
        f'<section class="model" data-model="{e(grid.model)}"><h2>{e(grid.model)}</h2>'
        f'<div class="scroll" role="region" aria-label="{label}" tabindex="0">'
        f'<table class="grid"><thead><tr><th scope="col">transformers \N{DOWNWARDS ARROW} <br>'
        f"torch \N{RIGHTWARDS ARROW}</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _summary(cells: Sequence[StackCell]) -> str:
    found = works(cells)
    models = plural(len({c.model for c in cells}), "model")
    stacks = plural(len({c.stack for c in cells}), "stack")
    if not found.working:
        text = "No transformers release has every stack ok for every model in these runs."
    else:
        text = (
            f"Every scenario of every model is ok on transformers <strong>{e(found.text)}"
            f"</strong> ({len(found.working)} of {len(found.releases)} releases)."
        )
    if found.gaps:
        text += " Not ok inside that range: " + ", ".join(e(g) for g in found.gaps) + "."
    snippet = badge_markdown()
    return (
        f'<p><img src="{BADGE}" alt="{e(BADGE_LABEL)}: {e(found.text)}" height="20"></p>'
        f'<p id="works">{text}</p>'
        f"<p>{models} · {stacks}. Each block is one stack: the worst state of its "
        "records, its ok scenarios out of all, the worst record's message on hover; open it "
        "for every scenario.</p>"
        f"<p>README snippet (relative to this folder): <code>{e(snippet)}</code></p>"
    )


def _legend() -> str:
    items = "".join(
        f'<li class="{css_class(s)}"><strong>{e(s)}</strong>: {e(MEANING.get(s, s))}</li>'
        for s in STATES
    )
    return f'<ul class="legend">{items}</ul>'


def render(
    cells: Sequence[StackCell],
    links: Mapping[str, str],
    *,
    runs: Sequence[str],
    records: int,
    dashboard: bool = False,
) -> str:
    """The whole page; every string from a record goes through `e`."""
    csp = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
           "img-src 'self' file: data:")  # fmt: skip
    nav = '<nav><a href="index.html">Dashboard</a><a href="claims.html">Claims</a></nav>'
    body = "".join(_grid(g, links) for g in grids(cells)) or "<p>No records.</p>"
    run_list = ", ".join(f"<code>{e(r)}</code>" for r in runs)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>Compatibility matrix</title><style>{STYLE}</style></head>\n<body>\n"
        f"{nav if dashboard else ''}<h1>Compatibility matrix</h1>"
        f"<p>Runs {run_list} · {records} records</p>{_summary(cells)}{_legend()}\n"
        f"{body}\n</body></html>\n"
    )


def badge_markdown() -> str:
    """The README snippet, relative to the page's folder: the badge linked to the page."""
    return badge.badge_markdown(BADGE, PAGE, alt="transformers compatibility")


def _links(stacks: Sequence[str], out_dir: Path, raw_dirs: Sequence[Path]) -> dict[str, str]:
    links = {}
    for stack in stacks:
        found = next((p for d in raw_dirs if (p := d / f"{stack}.jsonl").is_file()), None)
        if found is not None:
            relative = os.path.relpath(found, out_dir).replace(os.sep, "/")
            links[stack] = quote(relative, safe="/")
    return links


def build_compat(
    records: Sequence[Record], out_dir: Path, *, raw_dirs: Sequence[Path] = ()
) -> Path:
    """Write compat.html and badge.svg into out_dir; a stack links to the first
    `<raw_dir>/<stack-id>.jsonl` there is (none for records from the store)."""
    cells = stack_cells(records)
    links = _links(list(dict.fromkeys(c.stack for c in cells)), out_dir, raw_dirs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / BADGE).write_text(transformers_badge(cells), encoding="utf-8")
    runs = list(dict.fromkeys(str(r.get("run_id")) for r in records))
    page = out_dir / PAGE
    html = render(cells, links, runs=runs, records=len(records),
                  dashboard=(out_dir / "index.html").is_file())  # fmt: skip
    page.write_text(html, encoding="utf-8")
    return page
