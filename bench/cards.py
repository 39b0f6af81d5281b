"""How long a card takes to render (issue 28's goal: a card of a 10,000-row table in
under 1 s): the page of a Table of 10,000 rows (it shows the first 1,000 and says so),
built from a list and from a pandas DataFrame, and the same with a Markdown, an Image
and a VegaChart beside it (the vega scripts inlined). Best of five, on this machine.

    python bench/cards.py
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable

from ledgerflow.cards import Image, Markdown, Table, VegaChart
from ledgerflow.cards._page import render_page


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def best(work: Callable[[], object], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    rows = [[i, i * i, f"row {i}", i / 7] for i in range(10_000)]
    headers = ["i", "square", "label", "ratio"]

    def table_card() -> object:
        return render_page("bench", "table", [Table(rows, headers=headers)])

    def full_card() -> object:
        return render_page("bench", "all", [
            Markdown("# Results\n\nA *table* of 10,000 rows."), Table(rows, headers=headers),
            Image(_png()), VegaChart({"mark": "point", "data": {"values": [{"a": 1}]}}),
        ])  # fmt: skip

    print(f"10,000-row Table (list)                {best(table_card) * 1000:7.1f} ms")
    try:
        import pandas as pd
    except ImportError:
        print("10,000-row Table (DataFrame)           (pandas not installed)")
    else:
        frame = pd.DataFrame(rows, columns=headers)
        took = best(lambda: render_page("bench", "df", [Table.from_dataframe(frame)]))
        print(f"10,000-row Table (DataFrame)           {took * 1000:7.1f} ms")
    print(f"the same + Markdown, Image, VegaChart  {best(full_card) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
