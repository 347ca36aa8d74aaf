"""The compatibility heatmap: stacks by scenarios per model, coloured by the worst state (status
and golden verdict) over the repeats. Record strings are HTML-escaped, as in plots."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.report.dashboard import e
from harness.report.tables import golden_note, per_machine

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

# Heatmap states, best first; a cell shows the worst state over its repeats.
STATES = (
    ("ok · golden match", "#1a9850"), ("ok", "#91cf60"), ("ok · golden drift", "#d9ef8b"),
    ("ok · golden missing", "#fee08b"), ("unsupported", "#bdbdbd"),
    ("ok · golden stale", "#fdae61"), ("ok · golden mismatch", "#f46d43"), ("error", "#d73027"),
    ("timeout", "#a50026"), ("killed", "#67001f"), ("install_error", "#542788"),
)  # fmt: skip
STATE_RANK = {label: i for i, (label, _) in enumerate(STATES)}


def empty(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=html.escape(text), showarrow=False, x=0.5, y=0.5,
                       xref="paper", yref="paper")  # fmt: skip
    return fig


def state_of(status: str, golden: object) -> str:
    if status != "ok":
        return status if status in STATE_RANK else "error"
    label = f"ok · golden {golden}"
    return label if label in STATE_RANK else "ok"


@dataclass
class _Cell:
    """What one heatmap cell shows, gathered in a single pass over the records."""

    stack: str
    cell_id: str
    state: str = "ok · golden match"
    statuses: dict[str, int] = field(default_factory=dict)
    goldens: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, status: str, golden: object, message: object, detail: object) -> None:
        state = state_of(status, golden)
        if STATE_RANK[state] > STATE_RANK[self.state] or not self.statuses:
            self.state = state
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if isinstance(golden, str) and golden not in self.goldens:
            self.goldens.append(golden)
        if isinstance(message, str) and message and message not in self.messages:
            self.messages.append(message)
        if isinstance(detail, str) and detail and detail not in self.details:
            self.details.append(detail)

    def text(self) -> str:
        lines = [
            e(self.stack),
            e(self.cell_id),
            "status: " + ", ".join(f"{e(s)}: {n}" for s, n in self.statuses.items()),
            f"state: {e(self.state)}",
        ]
        if self.goldens:
            lines.append("golden: " + ", ".join(e(g) for g in self.goldens))
        lines += [f"message: {e(m[:300])}" for m in self.messages[:3]]
        notes = [n for n in map(golden_note, self.details[:3]) if n]
        lines += [f"golden: {e(n[:300])}" for n in notes[:1]]
        return "<br>".join(lines)


def _cells(df: pd.DataFrame) -> dict[tuple[str, str, str], _Cell]:
    cols = ["model", "stack_id", "scenario", "cell_id", "status", "golden", "message",
            "golden_detail"]  # fmt: skip
    cells: dict[tuple[str, str, str], _Cell] = {}
    # Plain lists, one pass: per-group pandas calls cost seconds on 10,000 records.
    lists = [df[c].tolist() for c in cols]
    for model, stack, scenario, cell_id, *found in zip(*lists, strict=True):
        cells.setdefault((model, stack, scenario), _Cell(stack, cell_id)).add(*found)
    return cells


def compatibility_heatmap(
    df: pd.DataFrame, stacks: Sequence[str], models: Sequence[str]
) -> go.Figure:
    """Stacks by scenarios per model, coloured by status and golden verdict; hover: messages."""
    df, stacks = per_machine(df, stacks)
    cells = _cells(df)
    present = sorted({c.state for c in cells.values()}, key=STATE_RANK.__getitem__)
    index = {s: i for i, s in enumerate(present)}
    scenarios = [str(s) for s in df["scenario"].unique()]
    used = [m for m in models if m in set(df["model"])]
    if not used:
        return empty(go.Figure(), "no records")
    fig = make_subplots(rows=len(used), cols=1, shared_xaxes=True,
                        subplot_titles=[html.escape(m) for m in used],
                        vertical_spacing=0.08 / max(len(used), 1))  # fmt: skip
    for r, model in enumerate(used, start=1):
        grid = [[(st, sc, cells.get((model, st, sc))) for sc in scenarios] for st in stacks]
        z = [[None if c is None else index[c.state] for _, _, c in row] for row in grid]
        text = [
            [c.text() if c else f"{e(st)}<br>{e(sc)}<br>not run" for st, sc, c in row]
            for row in grid
        ]
        fig.add_trace(go.Heatmap(z=z, x=[html.escape(s) for s in scenarios],
                                 y=[html.escape(s) for s in stacks], text=text,
                                 hovertemplate="%{text}<extra></extra>", coloraxis="coloraxis",
                                 xgap=2, ygap=2, name=html.escape(model)),
                      row=r, col=1)  # fmt: skip
    k = len(present)
    colours = dict(STATES)
    scale = [[j / k, colours[label]] for i, label in enumerate(present) for j in (i, i + 1)]
    fig.update_layout(
        title="Compatibility: status and golden verdict per stack and scenario",
        coloraxis={"colorscale": scale, "cmin": -0.5, "cmax": k - 0.5,
                   "colorbar": {"tickvals": list(range(k)), "ticktext": present,
                                "title": {"text": "state"}}},
        height=max(len(stacks), 2) * 40 * len(used) + 120 * len(used) + 100,
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed")  # oldest stack on top, as in the tables
    return fig
