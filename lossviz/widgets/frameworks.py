"""Picker: choose the framework you train with and read what its step does to each token, and the fix.

Every row comes from the measured table across frameworks (``lossviz/data/frameworks.json``,
written by ``python -m lossviz frameworks-table``: one epoch of each framework on a tiny model
under the probe, in one process and on 2 gloo ranks). Nothing is trained here: the picker only
reads the cached table, so it answers at once.
"""

from __future__ import annotations

import html

import ipywidgets as W

from ..trainers.frameworks import load_table
from .base import StaticVBox

__all__ = ["framework_choices", "framework_picker", "render_framework"]


def framework_choices(table: dict) -> list[tuple[str, str]]:
    """``[(label, key)]`` of the table's rows, for a dropdown: ``"PyTorch Lightning 2.6.6:
    automatic optimization"`` -> ``"lightning/automatic"``."""
    return [
        (f"{r['framework']} {r['version']}: {r['label']}", r["key"])
        for r in table["rows"] + table.get("model_rows", [])
    ]


def render_framework(key: str, table: dict) -> str:
    """The HTML of one row: the per-token rule, the short last window, 2 ranks, the one-line fix."""
    rows = {r["key"]: r for r in table["rows"] + table.get("model_rows", [])}
    if key not in rows:
        return (
            "<p>Choose one of the measured settings: "
            + html.escape(", ".join(label for label, _ in framework_choices(table)))
            + "</p>"
        )
    r = rows[key]
    good = r["weight_model"] == "global" and r["last_window_model"] in ("global", "read")
    ok = "green" if good else "#b35"
    grad = {
        True: "; the parameters' gradient on both ranks equals that of sum(W·l) for this rule",
        False: "; the parameters' gradient does NOT match this rule",
        None: "",  # a row whose data-parallel cell was not measured on parameter gradients
    }[r["dp_gradient_matches"]]
    dealt = f"; data dealt {r['dp_dealing']}" if r["dp_dealing"] else ""
    cells = [
        ("setting", r["setting"]),
        ("each token's weight", r["weight_rule"]),
        ("short last window", r["last_window_rule"]),
        ("2 ranks (DDP)", f"{r['dp_rule']}{dealt}{grad}"),
        ("auxiliary loss", r["aux_rule"]),
    ]
    body = "".join(
        f"<tr><td style='padding:2px 8px'><b>{html.escape(k)}</b></td>"
        f"<td style='padding:2px 8px'>{html.escape(v)}</td></tr>"
        for k, v in cells
    )
    return (
        f"<h4 style='margin:4px 0'>{html.escape(r['framework'])} {html.escape(r['version'])}</h4>"
        f"<table>{body}</table>"
        f"<p style='color:{ok}'><b>The one-line fix:</b> {html.escape(r['fix'])}</p>"
        f"<p style='font-size:small'>Measured on a tiny model with the probe; source: "
        f"<a href='{html.escape(r['source'])}' target='_blank'>{html.escape(r['source'])}</a></p>"
    )


def framework_picker(table: dict | None = None) -> StaticVBox:
    """A dropdown of the measured settings and the chosen one's row (see :func:`render_framework`)."""
    table = load_table() if table is None else table
    choices = framework_choices(table)
    pick = W.Dropdown(
        options=choices,
        value=choices[0][1],
        description="I train with",
        style={"description_width": "initial"},
        layout=W.Layout(width="520px"),
    )
    out = W.HTML(render_framework(pick.value, table))

    def on_change(change) -> None:
        out.value = render_framework(change["new"], table)

    pick.observe(on_change, names="value")
    return StaticVBox([pick, out], static_html=out.value)
