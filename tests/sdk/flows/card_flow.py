"""Cards: a default card and a blank one with every kind of component on `start`, a
component that fails to render on `a`, and a card that times out on `end`."""

import struct
import zlib

from ledgerflow import FlowSpec, Parameter, card, current, step
from ledgerflow.cards import Artifact, Image, Markdown, Table, VegaChart


def tiny_png() -> bytes:
    """A 1x1 PNG made without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


class Broken(Table):
    """A component whose rendering raises."""

    def render(self) -> str:
        raise ValueError("this component cannot render")


class CardFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5, type=float)

    @card
    @card(type="blank", id="report")
    @step
    def start(self):
        self.scores = [0.9, 0.8]
        self.secret_html = "<script>alert('x')</script>"
        current.card.append(Markdown("# Appended to the default card"))
        report = current.card["report"]
        report.append(Markdown("# Scores\n\n<b>raw html</b> and *emphasis*"))
        report.extend(
            [
                Table([[i, i * i] for i in range(10_000)], headers=["i", "square"]),
                Image(tiny_png(), label="a pixel"),
                Artifact(self.scores, name="scores"),
                VegaChart(
                    {
                        "mark": "bar",
                        "data": {"values": [{"a": 1, "b": 2}]},
                        "encoding": {"x": {"field": "a"}, "y": {"field": "b"}},
                    }
                ),
            ]
        )
        try:
            report.append("not a component")
        except TypeError as error:
            self.append_error = str(error)
        try:
            current.card["nope"]
        except KeyError as error:
            self.id_error = str(error)
        self.next(self.a)

    @card(type="blank")
    @step
    def a(self):
        current.card.append(Markdown("before the broken one"))
        current.card.append(Broken([[1]]))
        self.next(self.end)

    @step
    def end(self):
        self.had_card = current.card is not None


if __name__ == "__main__":
    CardFlow()
