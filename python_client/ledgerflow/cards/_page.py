"""A card's page: its components rendered into one self-contained HTML file, styles
and scripts inline, that loads nothing from the network (its own Content-Security-Policy
says so too). A component that raises is replaced by its error; the page still renders."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

from ledgerflow.cards.components import CardComponent, Error

STATIC = Path(__file__).parent / "static"
VEGA_SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")

# What a card may do: nothing from the network; inline styles, images as data: URLs,
# and its own inline scripts (vega compiles its expressions, hence 'unsafe-eval' on the
# pages that draw charts).
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'{eval}; connect-src 'none'; form-action 'none'; "
    "base-uri 'none'"
)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;
background:#fff}
main{max-width:1100px;margin:0 auto;padding:18px 24px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid
#e3e6ec;padding-bottom:4px}.sub{color:#5b6475;margin:0 0 12px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #e3e6ec;
padding:3px 8px;text-align:left;vertical-align:top}th{background:#f5f6f9}
.table{overflow-x:auto}.note{color:#5b6475;font-size:12px;font-style:italic}
pre{white-space:pre-wrap;word-break:break-word;background:#f5f6f9;padding:6px 8px;margin:4px 0;
border-radius:4px;font-size:12px}
.artifact .name{font-weight:600}.image img{max-width:100%}figure{margin:8px 0}
.error{border:1px solid #d33;background:#fdf0f0;padding:6px 10px;border-radius:4px;margin:8px 0}
.dag .step rect{fill:#f5f6f9;stroke:#8a93a6}.dag .step.this rect{fill:#e6f0ff;stroke:#1d5fd1;
stroke-width:3}.dag .edge{stroke:#8a93a6;stroke-width:1.5}.dag .fanout{stroke-dasharray:4 3}
.dag text{font-size:12px;fill:#1d2330}.dag .counts{fill:#5b6475}
"""

_VEGA_START = """
document.querySelectorAll('.vega-chart').forEach(function (chart) {
  var spec = JSON.parse(chart.querySelector('.vega-spec').textContent);
  vegaEmbed(chart.querySelector('.vega-target'), spec, {actions: false, renderer: 'svg'})
    .catch(function (error) {
      chart.textContent = 'the chart failed to render: ' + error;
      chart.className = 'error';
    });
});
"""


@dataclass
class RenderedPage:
    html: str
    # The first failure, as "Type: message" ("" when everything rendered).
    error: str


@cache
def _script(name: str) -> str:
    text = (STATIC / name).read_text(encoding="utf-8")
    return text.replace("</script", "<\\/script")


def render_page(
    title: str,
    subtitle: str,
    components: list[CardComponent],
    *,
    timeout: float = 0.0,
    failure: BaseException | None = None,
) -> RenderedPage:
    """The page of `components`. With `timeout` (seconds), components past it are
    left out and the page says so; `failure` is an error of the card itself (shown
    first, and the card's error)."""
    started = time.monotonic()
    errors: list[str] = []
    body: list[str] = []
    if failure is not None:
        failed = Error("the card", failure)
        errors.append(failed.text)
        body.append(failed.render())
    vega = False
    for index, component in enumerate(components):
        if timeout and time.monotonic() - started > timeout:
            late = TimeoutError(
                f"rendering took longer than timeout={timeout:g}s: "
                f"{len(components) - index} of {len(components)} components left out"
            )
            errors.append(Error("the card", late).text)
            body.append(Error("the card", late).render())
            break
        try:
            body.append(component.render())
            vega = vega or component.needs_vega
        except Exception as error:
            failed = Error(type(component).__name__, error)
            errors.append(failed.text)
            body.append(failed.render())
    scripts = ""
    if vega:
        bundled = "".join(f"<script>{_script(name)}</script>" for name in VEGA_SCRIPTS)
        scripts = f"{bundled}<script>{_VEGA_START}</script>"
    policy = CSP.format(eval=" 'unsafe-eval'" if vega else "")
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<h1>{escape(title)}</h1><p class="sub">{escape(subtitle)}</p>'
        + "".join(body)
        + f"</main>{scripts}</body></html>"
    )
    return RenderedPage(html, errors[0] if errors else "")
