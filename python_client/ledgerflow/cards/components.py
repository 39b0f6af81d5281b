"""The components a card is made of (``from ledgerflow.cards import Markdown, Table,
Image, Artifact, VegaChart``), as Metaflow's ``metaflow.cards`` names them.

Each renders to a fragment of HTML in which everything that came from the user is
escaped: a card is shown to other people (the web UI), so a value must never become
markup or script. Heavy libraries (markdown-it, matplotlib, pandas) are imported only
when a component that needs them is used."""

from __future__ import annotations

import base64
import io
import itertools
import json
import reprlib
from collections.abc import Iterable, Sequence, Sized
from html import escape
from typing import Any

# A table shows at most this many rows and columns, and this much of each cell: the
# card says how much it left out (a card is a page, not a data export).
MAX_ROWS = 1000
MAX_COLUMNS = 100
MAX_CELL_CHARS = 500
# How much of a value an Artifact (and the default card) shows.
MAX_PREVIEW_CHARS = 4096

_repr = reprlib.Repr()
_repr.maxstring = MAX_PREVIEW_CHARS
_repr.maxother = MAX_PREVIEW_CHARS
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = _repr.maxdict = 100
_repr.maxlevel = 4


def preview_text(value: Any, limit: int = MAX_PREVIEW_CHARS) -> str:
    """A short text of any value, bounded in time as well as length (a list of ten
    million items is not turned into one string first)."""
    text = value if isinstance(value, str) else _repr.repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


class CardComponent:
    """A part of a card. Subclasses implement render(); the card catches what it
    raises and shows the error in the component's place."""

    # The scripts a page must bundle for this component (see _page.py).
    needs_vega = False

    def render(self) -> str:
        raise NotImplementedError


class Markdown(CardComponent):
    """Markdown text (CommonMark, tables). Raw HTML in it is shown as text, never run."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"Markdown takes a str, not {type(text).__name__}")
        self.text = text

    def render(self) -> str:
        from markdown_it import MarkdownIt  # a dependency of rich, imported when used

        parser = MarkdownIt("commonmark", {"html": False}).enable("table")
        return f'<div class="markdown">{parser.render(self.text)}</div>'


class Artifact(CardComponent):
    """A value shown as text (its repr, shortened), with an optional name."""

    def __init__(self, artifact: Any, name: str | None = None) -> None:
        self.value = artifact
        self.name = name

    def render(self) -> str:
        title = f'<div class="name">{escape(self.name)}</div>' if self.name else ""
        return f'<div class="artifact">{title}<pre>{escape(preview_text(self.value))}</pre></div>'


class Image(CardComponent):
    """An image from its bytes (PNG, JPEG, GIF or WebP), embedded in the page."""

    _KINDS = (
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
    )

    def __init__(self, src: bytes, label: str | None = None) -> None:
        if not isinstance(src, bytes | bytearray | memoryview):
            raise TypeError(
                f"Image takes the image's bytes (PNG, JPEG, GIF or WebP), not "
                f"{type(src).__name__}; for a matplotlib figure use Image.from_matplotlib(fig)"
            )
        self.src = bytes(src)
        self.label = label

    @classmethod
    def from_matplotlib(cls, figure: Any, label: str | None = None) -> Image:
        """A matplotlib figure as a PNG (matplotlib itself is needed only by the caller,
        who made the figure)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return cls(buffer.getvalue(), label)

    def media_type(self) -> str:
        for magic, kind in self._KINDS:
            if self.src.startswith(magic):
                return kind
        if self.src[:4] == b"RIFF" and self.src[8:12] == b"WEBP":
            return "image/webp"
        raise ValueError("the bytes are not a PNG, JPEG, GIF or WebP image")

    def render(self) -> str:
        data = base64.b64encode(self.src).decode()
        label = escape(self.label or "")
        caption = f"<figcaption>{label}</figcaption>" if self.label else ""
        return (
            f'<figure class="image"><img alt="{label}" '
            f'src="data:{self.media_type()};base64,{data}">{caption}</figure>'
        )


class Table(CardComponent):
    """Rows of cells, with optional headers. A cell is a value (shown as text) or
    another component. Past MAX_ROWS rows (or MAX_COLUMNS columns) the table shows the
    first ones and says how many it left out."""

    def __init__(
        self,
        data: Iterable[Sequence[Any]] | None = None,
        headers: Sequence[str] | None = None,
    ) -> None:
        rows = [] if data is None else data
        self.total = len(rows) if isinstance(rows, Sized) else None
        self.rows = [list(row) for row in itertools.islice(rows, MAX_ROWS + 1)]
        self.headers = [str(h) for h in headers] if headers is not None else []

    @classmethod
    def from_dataframe(cls, dataframe: Any) -> Table:
        """A pandas DataFrame: its columns as headers, its first MAX_ROWS rows."""
        head = dataframe.head(MAX_ROWS)
        table = cls(head.itertuples(index=False, name=None), headers=list(dataframe.columns))
        table.total = len(dataframe)
        return table

    def render(self) -> str:
        rows = self.rows[:MAX_ROWS]
        total = self.total if self.total is not None else len(self.rows)
        width = max([len(self.headers), *(len(row) for row in rows)], default=0)
        shown = min(width, MAX_COLUMNS)
        parts = ['<div class="table"><table>']
        if self.headers:
            parts.append(
                "<thead><tr>"
                + "".join(f"<th>{escape(_cell_text(h))}</th>" for h in self.headers[:shown])
                + "</tr></thead>"
            )
        parts.append("<tbody>")
        parts.extend(
            "<tr>" + "".join(f"<td>{_cell(value)}</td>" for value in row[:shown]) + "</tr>"
            for row in rows
        )
        parts.append("</tbody></table>")
        notes = []
        if total > len(rows) or (self.total is None and len(self.rows) > MAX_ROWS):
            more = f"{total:,}" if self.total is not None else f"more than {MAX_ROWS:,}"
            notes.append(f"showing the first {len(rows):,} of {more} rows")
        if width > shown:
            notes.append(f"the first {shown} of {width} columns")
        if notes:
            parts.append(f'<p class="note">{escape("; ".join(notes))}</p>')
        parts.append("</div>")
        return "".join(parts)


def _cell_text(value: Any) -> str:
    text = value if isinstance(value, str) else preview_text(value, MAX_CELL_CHARS)
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS] + " ..."


def _cell(value: Any) -> str:
    if isinstance(value, CardComponent):
        return value.render()
    return escape(_cell_text(value))


class VegaChart(CardComponent):
    """A Vega or Vega-Lite chart from its JSON spec, drawn in the page by the vega
    scripts the package bundles (no network). Data must be inline in the spec: a card
    may not fetch anything."""

    needs_vega = True

    def __init__(self, spec: dict[str, Any], show_controls: bool = False) -> None:
        if not isinstance(spec, dict):
            raise TypeError(f"VegaChart takes the spec as a dict, not {type(spec).__name__}")
        self.spec = spec
        self.show_controls = show_controls

    @classmethod
    def from_altair_chart(cls, chart: Any) -> VegaChart:
        return cls(chart.to_dict())

    def render(self) -> str:
        # In a <script type="application/json"> only "</" could end the element early.
        spec = json.dumps(self.spec, default=str).replace("</", "<\\/")
        return (
            '<div class="vega-chart"><div class="vega-target"></div>'
            f'<script type="application/json" class="vega-spec">{spec}</script></div>'
        )


class Error(CardComponent):
    """What the card shows where something failed to render."""

    def __init__(self, what: str, error: BaseException) -> None:
        self.what = what
        self.error = error

    @property
    def text(self) -> str:
        """ "ValueError: message", whatever the exception holds: one whose str() raises
        still shows, and NUL characters (which the ledger refuses) are escaped, so a
        card's error never stops its task from being recorded."""
        try:
            message = str(self.error)
        except Exception:
            message = "<its message could not be read>"
        return f"{type(self.error).__name__}: {message}".replace("\x00", "\\x00")

    def render(self) -> str:
        return (
            f'<div class="error"><strong>{escape(self.what)} failed to render</strong>'
            f"<pre>{escape(self.text)}</pre></div>"
        )
