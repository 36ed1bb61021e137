"""One self-contained HTML page: inline CSS, every plot a base64 PNG, no script and no external URL,
so it opens offline in any browser and can be mailed as one file."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from matplotlib.figure import Figure

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #aaa}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f0f0f0}td.n{text-align:right}figure{margin:1em 0}
img{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}.note{color:#555}
nav a{margin-right:1em}"""


class Page:
    """Accumulates sections of HTML; ``figure`` embeds a matplotlib figure and, given ``figures_dir``
    (``--figures DIR``), also writes it there as PNG, SVG and PDF for papers."""

    def __init__(self, title: str, figures_dir: str = "") -> None:
        self.title, self.figures_dir = title, figures_dir
        self.parts: list[str] = []
        self.sections: list[tuple[str, str]] = []
        self.figures: list[str] = []

    def section(self, anchor: str, heading: str) -> None:
        self.sections.append((anchor, heading))
        self.parts.append(f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>')

    def end_section(self) -> None:
        self.parts.append("</section>")

    def heading(self, text: str) -> None:
        self.parts.append(f"<h3>{html.escape(text)}</h3>")

    def text(self, text: str, note: bool = False) -> None:
        self.parts.append(f'<p{" class=note" if note else ""}>{html.escape(text)}</p>')

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td{' class=n' if _numeric(c) else ''}>{html.escape(_cell(c))}</td>"
                                        for c in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, fig: Figure | None, name: str, caption: str = "") -> None:
        if fig is None:
            return
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        self.figures.append(name)
        if self.figures_dir:
            for fmt in ("png", "svg", "pdf"):
                fig.savefig(f"{self.figures_dir}/{name}.{fmt}", format=fmt, dpi=200 if fmt == "png" else 100)
        data = base64.b64encode(buf.getvalue()).decode()
        alt = html.escape(caption or name)
        self.parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                          f'{f"<figcaption>{alt}</figcaption>" if caption else ""}</figure>')
        plt.close(fig)  # a report of many models must not keep every figure in memory

    def render(self) -> str:
        nav = "".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h in self.sections)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}'
                f"</title><style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1><nav>{nav}</nav>"
                + "".join(self.parts) + "</body></html>\n")


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4f}" if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)
