"""A task's artifacts on its page: a preview of each (text that keeps its lines, a
table's rows, an image), its size as a value (not as stored, compressed), and downloads a
browser user can open (JSON, CSV, the bytes, NumPy's .npy, or a plain pickle).

Nothing here runs code from a value: previews and JSON/CSV/.npy downloads load it with
`ledgerflow.datastore.safe_load` (plain data only); the pickle download is made from the
stored bytes without unpickling them (their out-of-band buffers written back in band)."""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import pprint
import struct
import threading
import urllib.parse
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ledgerflow.datastore.content import R_SERIALIZER, frame_parts
from ledgerflow.datastore.safe_load import NotSafeToLoad, load_data_only
from ledgerflow.exceptions import RpcError
from ledgerflow.ui.text import cut
from ledgerflow.v1 import records_pb2

# Values up to this many stored bytes are loaded for a preview (and JSON/CSV downloads).
LOAD_BYTES = 8 * 1024 * 1024
PREVIEW_CHARS = 4096
IMAGE_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"),
)  # fmt: skip
# Download formats: format -> (label, file suffix, media type).
FORMATS = {
    "json": ("JSON", "json", "application/json"),
    "csv": ("CSV", "csv", "text/csv; charset=utf-8"),
    "npy": ("NumPy .npy", "npy", "application/octet-stream"),
    "bytes": ("bytes", "bin", "application/octet-stream"),
    "pickle": ("pickle", "pkl", "application/octet-stream"),
    "stored": ("as stored", "ledgerflow", "application/octet-stream"),
}


@dataclass
class Preview:
    """What the page shows of one stored value (the same for every artifact of it)."""

    # The value's size: its bytes, its pickle uncompressed (None: not measured).
    size: int | None
    # "text" (a <pre>), "image" (an <img> of the bytes), "note" (why none), "none".
    kind: str
    text: str = ""
    image_type: str = ""
    formats: list[str] = field(default_factory=list)
    # The stored (maybe compressed) size: said when the value's was not measured.
    stored: int = 0

    @property
    def size_text(self) -> str:
        """The size as "1.2 MiB" ("12 B" below 1 KiB); the stored size ("3.0 GiB
        stored") when the value's was not measured."""
        if self.size is None:
            return f"{_human(self.stored)} stored"
        return _human(self.size)


def _human(size: int) -> str:
    amount, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            break
        amount /= 1024
    return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"


def image_type(data: bytes) -> str:
    for magic, kind in IMAGE_TYPES:
        if data.startswith(magic):
            return kind
    return "image/webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else ""


class Previews:
    """Previews by content key: a stored value never changes, so each is made once."""

    def __init__(self, store: Any, kept: int = 2000) -> None:
        self._store = store
        self._kept = kept
        self._made: OrderedDict[tuple[str, str], Preview] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, artifact: records_pb2.Artifact) -> Preview:
        key = (artifact.content_key, artifact.serializer)
        with self._lock:
            if key in self._made:
                return self._made[key]
        made = _preview(self._store, artifact)
        made.stored = artifact.size
        with self._lock:
            self._made[key] = made
            while len(self._made) > self._kept:
                self._made.popitem(last=False)
        return made


def _preview(store: Any, artifact: records_pb2.Artifact) -> Preview:
    size = _value_size(store, artifact)
    stored = "stored" if artifact.serializer == R_SERIALIZER else "pickle"
    if artifact.serializer == "raw":
        stored = "bytes"
    if artifact.size > LOAD_BYTES:
        return Preview(size, "none", formats=[stored])
    try:
        value = load_data_only(store, artifact.content_key, artifact.serializer)
    except Exception as error:  # not plain data, or a value this process cannot load
        return Preview(size, "note", unreadable(error), formats=[stored])
    formats = _formats(value) + ([stored] if stored != "bytes" else [])
    if isinstance(value, bytes | bytearray):
        kind = image_type(bytes(value[:16]))
        if kind:
            return Preview(size, "image", image_type=kind, formats=formats)
    return Preview(size, "text", _text(value), formats=formats)


def unreadable(error: Exception) -> str:
    """What a preview says of a value it does not load: one that names code (loading it
    would run that), or one this process cannot load (a missing class)."""
    if isinstance(error, NotSafeToLoad):
        return (f"<preview not available: loading it would run {error} (read it with the "
                "client API, or download it)>")  # fmt: skip
    return f"<cannot preview: {type(error).__name__}: {error}>"


def _formats(value: Any) -> list[str]:
    if isinstance(value, bytes | bytearray):
        return ["bytes"]
    kind = type(value)
    if kind.__module__.startswith("pandas") and kind.__name__ in ("DataFrame", "Series"):
        return ["csv"]
    if kind.__module__.startswith("numpy") and kind.__name__ == "ndarray":
        # JSON has no NaN nor infinity: an array holding one offers .npy alone.
        numeric = value.size <= 100_000 and value.dtype.kind in "biuf"
        return ["npy"] + (["json"] if numeric and bool(_finite(value)) else [])
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return []
    return ["json"]


def _finite(array: Any) -> Any:
    import numpy

    return array.dtype.kind != "f" or numpy.isfinite(array).all()


def _text(value: Any) -> str:
    kind = type(value)
    if kind.__module__.startswith("pandas") and kind.__name__ in ("DataFrame", "Series"):
        text = str(value.to_string(max_rows=30, max_cols=12))
    elif isinstance(value, str):
        text = value
    elif isinstance(value, dict | list | tuple | set):
        text = pprint.pformat(value, width=100, compact=True)
    else:
        text = repr(value)
    return cut(text, PREVIEW_CHARS)


def _value_size(store: Any, artifact: records_pb2.Artifact) -> int | None:
    """The value's bytes: a compressed pickle's size once decompressed (None past
    LOAD_BYTES stored: a value of gigabytes is not read, nor inflated, to say its size)."""
    if artifact.serializer != "pickle5+zlib":
        return artifact.size
    if artifact.size > LOAD_BYTES:
        return None
    try:
        meta, buffers = frame_parts(store.storage.get(artifact.content_key))
        inflate, size = zlib.decompressobj(), 0
        for start in range(0, len(meta), 1 << 20):
            size += len(inflate.decompress(meta[start : start + (1 << 20)]))
        return size + len(inflate.flush()) + sum(len(b) for b in buffers)
    except Exception:  # unreadable: say what is stored
        return None


def download(store: Any, artifact: records_pb2.Artifact, form: str) -> tuple[bytes, str, str]:
    """The value in format `form` (one of its Preview's formats): its bytes, media type
    and file name. ValueError for a format the value has not."""
    if form not in FORMATS:
        raise ValueError(f"no download format {form!r}: one of {', '.join(FORMATS)}")
    _, suffix, media = FORMATS[form]
    name = artifact.name
    if form == "stored":
        data = store.storage.get_bytes(artifact.content_key)
        return data, media, f"{name}.{artifact.serializer}.{suffix}"
    if form == "pickle":
        if artifact.serializer not in ("pickle5", "pickle5+zlib"):
            raise ValueError(f"{name} is not stored as a pickle")
        return standalone_pickle(store.storage.get(artifact.content_key), artifact.serializer), \
            media, f"{name}.{suffix}"  # fmt: skip
    value = load_data_only(store, artifact.content_key, artifact.serializer)
    if form == "bytes" and isinstance(value, bytes | bytearray):
        kind = image_type(bytes(value[:16]))
        return bytes(value), kind or media, f"{name}.{kind.split('/')[1] if kind else suffix}"
    if form in _formats(value):
        if form == "json":
            listed = value.tolist() if hasattr(value, "tolist") else value
            return json.dumps(listed, allow_nan=False, indent=1).encode(), media, f"{name}.json"
        if form == "csv":
            return str(value.to_csv()).encode(), media, f"{name}.csv"
        if form == "npy":
            import numpy

            buffer = io.BytesIO()
            numpy.save(buffer, value, allow_pickle=False)
            return buffer.getvalue(), media, f"{name}.npy"
    raise ValueError(f"{name} ({artifact.type_name}) has no {FORMATS[form][0]} form")


def standalone_pickle(data: Any, serializer: str) -> bytes:
    """A stored pickle5 value as one plain pickle, which `pickle.load` reads alone: its
    out-of-band buffers written in band (each NEXT_BUFFER becomes a BYTEARRAY8 of the
    buffer's bytes; frames, now of other lengths, dropped, as they are optional). Only
    the opcodes are read: nothing in it is run."""
    meta, buffers = frame_parts(data)
    if serializer == "pickle5+zlib":
        meta = memoryview(zlib.decompress(meta))
    raw = bytes(meta)
    ops = list(pickletools.genops(raw))
    out = io.BytesIO()
    taken = iter(buffers)
    for index, (op, _, at) in enumerate(ops):
        end = ops[index + 1][2] if index + 1 < len(ops) else len(raw)
        if op.name == "FRAME":
            continue
        if op.name == "NEXT_BUFFER":
            buffer = next(taken)
            out.write(pickle.BYTEARRAY8 + struct.pack("<Q", len(buffer)))
            out.write(buffer)
            continue
        out.write(raw[at if at is not None else 0 : end])
    return out.getvalue()


def response(
    store: Any, previews: Previews, artifact: records_pb2.Artifact, form: str
) -> tuple[bytes, str, dict[str, str]]:
    """What /artifacts/NAME?format=FORM answers: the value as a file to save (its first
    format when none is asked), or with `image` the image bytes to show (PNG, JPEG, GIF
    or WebP only: never markup, nothing the browser would run)."""
    shown = previews.of(artifact)
    if form == "image":
        if shown.kind != "image":
            raise RpcError("INVALID_ARGUMENT", f"{artifact.name} is not an image")
        data = bytes(load_data_only(store, artifact.content_key, artifact.serializer))
        return data, shown.image_type, {**SAFE_HEADERS, "Content-Disposition": "inline"}
    form = form or shown.formats[0]
    try:
        data, media, name = download(store, artifact, form)
    except (ValueError, NotSafeToLoad) as error:
        raise RpcError("INVALID_ARGUMENT", str(error)) from None
    return data, media, {**SAFE_HEADERS, "Content-Disposition": attachment(name)}


def attachment(name: str) -> str:
    """A Content-Disposition that saves the response as file `name`, whatever it holds
    (an artifact's name may be any identifier, `数据`): an ASCII `filename` for old
    clients (each other character, quote, backslash and control character an `_`) and
    RFC 6266's `filename*` with the name itself; a header is Latin-1, so `name` as it is
    could fail the response."""
    plain = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    if plain == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=3600",
}
