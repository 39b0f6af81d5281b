"""The content-addressed datastore for artifact values and task logs.

A value's key is the BLAKE3 hash (256 bits, hex) of its stored bytes, so equal values
are stored once and a clone or an unchanged inherited artifact costs nothing. BLAKE3 is
a cryptographic hash that runs several times faster than SHA-256 (4.9 against 1.1 GB/s
on one core here), and hashing is most of the cost of saving a large array. Values are written as:

- ``raw``: ``bytes`` as they are;
- ``pickle5``: pickle protocol 5 with out-of-band buffers, so numpy arrays, pandas
  columns and Arrow buffers go to storage as their raw memory (no gzip, no copy into
  the pickle) and come back as writable arrays over one read buffer;
- ``pickle5+zlib``: the same, compressed, only when the in-band pickle is large and
  compresses well (plain Python objects; never numeric buffers);
- ``rds+pickle5``: a value an R step made (:class:`RValue`): R's own serialization,
  which R readers restore exactly, and beside it the Python value it converts to, which
  Python readers get (an :class:`RObject` where there is none). A long numeric vector or
  a data.frame of numbers is stored instead as its columns' memory, from which R
  rebuilds it and Python reads it (ledgerflow/datastore/r_columns.py).

Storage is a local folder (default) or S3 through boto3's transfer manager (parallel
multipart transfers).
"""

from __future__ import annotations

import abc
import io
import os
import pickle
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

Buffer = bytes | bytearray | memoryview
_MAGIC = b"LFP5"
_HEADER = struct.Struct("<4sIQ")
_COMPRESS_FROM = 64 * 1024


class ArtifactSerializationError(Exception):
    """A value could not be stored (it cannot be pickled)."""


R_SERIALIZER = "rds+pickle5"


@dataclass(frozen=True)
class RValue:
    """A value an R step made: ``serialize(x, NULL)``'s bytes, its R class, its length
    (for foreach), and its Python equivalent where one exists (has_python: True); or,
    has_python "columns", no serialization (rds empty) and `python` its columns (see
    ledgerflow/datastore/r_columns.py)."""

    rds: bytes
    r_class: str
    length: int
    python: Any = None
    has_python: bool | str = False

    def __len__(self) -> int:
        return self.length


class RObject:
    """What Python reads for an R value that has no Python equivalent (a function, an
    environment, a model): its R serialization, which R readers restore."""

    def __init__(self, rds: bytes, r_class: str) -> None:
        self.rds = rds
        self.r_class = r_class

    def __repr__(self) -> str:
        return f"<R value of class {self.r_class!r}: read it from R>"


@dataclass(frozen=True)
class StoredValue:
    key: str
    size: int
    type_name: str
    serializer: str


def type_name_of(value: Any) -> str:
    cls = type(value)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _frame(value: Any, compress: bool = True) -> tuple[list[Buffer], str]:
    if isinstance(value, bytes):
        return [value], "raw"
    buffers: list[pickle.PickleBuffer] = []
    try:
        meta = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception as error:  # pickling can raise nearly anything
        raise ArtifactSerializationError(f"{type(error).__name__}: {error}") from None
    serializer = "pickle5"
    if compress and not buffers and len(meta) >= _COMPRESS_FROM:
        packed = zlib.compress(meta, 1)
        if len(packed) < 0.8 * len(meta):
            meta, serializer = packed, "pickle5+zlib"
    raws = [b.raw() for b in buffers]
    lengths = b"".join(struct.pack("<Q", r.nbytes) for r in raws)
    header = _HEADER.pack(_MAGIC, len(raws), len(meta)) + lengths
    return [header, meta, *raws], serializer


def _decode(data: Buffer, serializer: str) -> Any:
    """The value Python readers get."""
    if serializer != R_SERIALIZER:
        return _unframe(data, serializer)
    return r_python(*_unframe_r(data))


def r_python(rds: Any, r_class: str, has_python: bool | str, python: Any) -> Any:
    """What Python readers get for a stored R value."""
    if has_python == "columns":
        from ledgerflow.datastore.r_columns import python_value

        return python_value(python)
    return python if has_python else RObject(bytes(rds), r_class)


def r_meta(meta: memoryview) -> memoryview:
    """An R value's pickle bytes. R values are stored uncompressed (their serializer
    says nothing of compression); those an earlier version compressed anyway are told
    apart by their first byte (a pickle starts with 0x80, zlib's stream with 0x78)."""
    return meta if bytes(meta[:1]) == b"\x80" else memoryview(zlib.decompress(meta))


def _unframe_r(data: Buffer) -> Any:
    meta, buffers = frame_parts(data)
    return pickle.loads(r_meta(meta), buffers=buffers)


def frame_parts(data: Buffer) -> tuple[memoryview, list[memoryview]]:
    """A stored pickle5 value's pickle bytes and its out-of-band buffers, unread."""
    view = memoryview(data)
    magic, count, meta_len = _HEADER.unpack_from(view, 0)
    if magic != _MAGIC:
        raise ValueError("stored value is not in ledgerflow's pickle5 format")
    offset = _HEADER.size
    lengths = struct.unpack_from(f"<{count}Q", view, offset)
    offset += 8 * count
    meta = view[offset : offset + meta_len]
    offset += meta_len
    buffers = []
    for length in lengths:
        buffers.append(view[offset : offset + length])
        offset += length
    return meta, buffers


def frame_offsets(data: Buffer) -> list[tuple[int, int]]:
    """Where a stored pickle5 value's out-of-band buffers lie in its bytes: (offset,
    length) each, in the order they were pickled (for readers that read them in place)."""
    magic, count, meta_len = _HEADER.unpack_from(data, 0)
    if magic != _MAGIC:
        raise ValueError("stored value is not in ledgerflow's pickle5 format")
    lengths = struct.unpack_from(f"<{count}Q", data, _HEADER.size)
    offset = _HEADER.size + 8 * count + meta_len
    places = []
    for length in lengths:
        places.append((offset, length))
        offset += length
    return places


def _unframe(data: Buffer, serializer: str) -> Any:
    if serializer == "raw":
        return bytes(data) if not isinstance(data, bytes) else data
    meta, buffers = frame_parts(data)
    if serializer == "pickle5+zlib":
        meta = memoryview(zlib.decompress(meta))
    return pickle.loads(meta, buffers=buffers)


class Storage(abc.ABC):
    """Blobs by key."""

    @abc.abstractmethod
    def has(self, key: str) -> bool: ...

    @abc.abstractmethod
    def put(self, key: str, parts: Sequence[Buffer]) -> None: ...

    @abc.abstractmethod
    def get(self, key: str) -> bytearray:
        """The stored bytes, writable (arrays loaded over them stay writable)."""

    def get_bytes(self, key: str) -> bytes:
        return bytes(self.get(key))

    def get_many(self, keys: Sequence[str]) -> list[bytearray]:
        return [self.get(k) for k in keys]

    def after_fork(self) -> None:  # noqa: B027 - only some storages hold connections
        """Called in a forked task process: drop connections shared with the parent."""


# What a datastore key may be: a content hash's hex digits, or a name like one (the
# service refuses any other key in an event). Never a path, so that a key read from the
# ledger cannot name a file outside the datastore ('/etc/passwd', '../x').
DATASTORE_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,128}\Z")


def checked_key(key: str) -> str:
    if not DATASTORE_KEY.match(key):
        raise ValueError(f"{key[:80]!r} is not a datastore key (a content hash), so it is not read")
    return key


class LocalStorage(Storage):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        key = checked_key(key)
        return self.root / key[:2] / key

    def has(self, key: str) -> bool:
        return self._path(key).exists()

    def put(self, key: str, parts: Sequence[Buffer]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile  # (imported here: reading values does not need it)

        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                for part in parts:
                    out.write(part)
            os.replace(temp, path)  # atomic: readers never see half a value
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(f"value {key} is not in the datastore at {self.root}") from None

    def get(self, key: str) -> bytearray:
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as source:
                data = bytearray(os.fstat(source.fileno()).st_size)
                view = memoryview(data)
                read = 0
                while read < len(data):
                    n = source.readinto(view[read:])
                    if not n:
                        break
                    read += n
                return data
        except FileNotFoundError:
            raise KeyError(f"value {key} is not in the datastore at {self.root}") from None


class _PartsReader(io.RawIOBase):
    """A file-like view over several buffers, so uploads need no concatenated copy."""

    def __init__(self, parts: Sequence[Buffer]) -> None:
        self._parts = [memoryview(p).cast("B") for p in parts]
        self._index = 0
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        out = memoryview(target).cast("B")
        written = 0
        while written < len(out) and self._index < len(self._parts):
            part = self._parts[self._index]
            n = min(len(out) - written, len(part) - self._offset)
            out[written : written + n] = part[self._offset : self._offset + n]
            written += n
            self._offset += n
            if self._offset == len(part):
                self._index, self._offset = self._index + 1, 0
        return written


class S3Storage(Storage):
    """S3 through boto3: multipart and parallel transfers for large values."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, max_workers: int = 8) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import boto3
        from boto3.s3.transfer import TransferConfig

        if not url.startswith("s3://"):
            raise ValueError(f"S3 root {url!r} must look like s3://bucket/prefix")
        bucket, _, prefix = url[5:].partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._endpoint_url = endpoint_url
        self._max_workers = max_workers
        self._client = boto3.client("s3", endpoint_url=endpoint_url)
        self._transfer = TransferConfig(
            multipart_threshold=16 * 1024 * 1024,
            multipart_chunksize=16 * 1024 * 1024,
            max_concurrency=max_workers,
        )
        self._pool = ThreadPoolExecutor(max_workers=max_workers)

    def after_fork(self) -> None:
        """A forked task must not share the parent's HTTP connections or threads."""
        from concurrent.futures import ThreadPoolExecutor

        import boto3

        self._client = boto3.client("s3", endpoint_url=self._endpoint_url)
        self._pool = ThreadPoolExecutor(max_workers=self._max_workers)

    def _key(self, key: str) -> str:
        key = checked_key(key)
        return f"{self.prefix}/{key[:2]}/{key}" if self.prefix else f"{key[:2]}/{key}"

    def has(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put(self, key: str, parts: Sequence[Buffer]) -> None:
        self._client.upload_fileobj(
            _PartsReader(parts), self.bucket, self._key(key), Config=self._transfer
        )

    def get(self, key: str) -> bytearray:
        from botocore.exceptions import ClientError

        sink = io.BytesIO()
        try:
            self._client.download_fileobj(self.bucket, self._key(key), sink, Config=self._transfer)
        except ClientError as error:
            raise KeyError(
                f"value {key} is not in s3://{self.bucket}/{self.prefix}: {error}"
            ) from None
        return bytearray(sink.getbuffer())

    def get_many(self, keys: Sequence[str]) -> list[bytearray]:
        return list(self._pool.map(self.get, keys))


class ContentStore:
    """Values in, keys out; keys in, values out."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # Hashing on several threads starts a thread pool that a fork does not copy: a
        # child of a process that used it would wait on it for ever. So only a process
        # that will not fork (a task, see after_fork) hashes in parallel.
        self.parallel_hash = False

    def after_fork(self) -> None:
        """In a forked task process: reconnect the storage; hash in parallel."""
        self.storage.after_fork()
        self.parallel_hash = True

    def save(self, value: Any) -> StoredValue:
        if isinstance(value, RValue):
            # R's serialization out of band: written as it is, not copied into the pickle.
            rds = pickle.PickleBuffer(value.rds)
            packed = (rds, value.r_class, value.has_python, value.python)
            # Never compressed: R_SERIALIZER has no "+zlib" kind (R's rds is compact).
            parts, _ = _frame(packed, compress=False)
            return self._put(parts, R_SERIALIZER, f"R {value.r_class}")
        parts, serializer = _frame(value)
        return self._put(parts, serializer, type_name_of(value))

    def _put(self, parts: list[Buffer], serializer: str, type_name: str) -> StoredValue:
        digest = blake3.blake3(max_threads=blake3.blake3.AUTO if self.parallel_hash else 1)
        size = 0
        for part in parts:
            digest.update(part)
            size += memoryview(part).nbytes
        key = digest.hexdigest()
        if not self.storage.has(key):
            self.storage.put(key, parts)
        return StoredValue(key, size, type_name, serializer)

    def load(self, key: str, serializer: str) -> Any:
        if serializer == "raw":
            return self.storage.get_bytes(key)
        return _decode(self.storage.get(key), serializer)

    def load_rds(self, key: str) -> bytes:
        """An R value's own serialization (for R readers)."""
        rds, _, has_python, _ = _unframe_r(self.storage.get(key))
        if has_python == "columns":
            raise ValueError(f"R value {key} is stored as columns: read it with load_r()")
        return bytes(rds)

    def load_r(self, key: str) -> tuple[Any, str, bool | str, Any]:
        """An R value as stored: (its serialization, R class, has_python, its Python
        form), buffers over the stored bytes, unconverted (for R readers)."""
        rds, r_class, has_python, python = _unframe_r(self.storage.get(key))
        return rds, r_class, has_python, python

    def load_many(self, items: Sequence[tuple[str, str]]) -> list[Any]:
        blobs = self.storage.get_many([key for key, _ in items])
        return [_decode(blob, ser) for blob, (_, ser) in zip(blobs, items, strict=True)]

    def save_bytes(self, data: bytes) -> str:
        """Stores raw bytes (e.g. a log) and returns the key; empty data gets no key."""
        return self.save(data).key if data else ""
