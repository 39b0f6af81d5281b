"""The one rule the pages cut a long text by: at most `most` characters, ending in "…"
when cut (the whole text stays where the page can show it: a title, a download)."""

from __future__ import annotations

ELLIPSIS = "…"


def cut(text: str, most: int) -> str:
    """`text` as it is when it has at most `most` characters, else its first `most - 1`
    and "…" (so never longer than `most`)."""
    return text if len(text) <= most else text[: max(0, most - 1)] + ELLIPSIS
