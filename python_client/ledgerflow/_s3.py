"""``ledgerflow.S3``: Metaflow's S3 client, for data a step reads or writes itself.

    with S3(run=self) as s3:                    # under the run's own prefix
        url = s3.put("model.bin", blob)
        s3.get("model.bin").blob
    with S3(s3root="s3://bucket/prefix") as s3:
        for obj in s3.get_recursive(["images/"]):
            print(obj.key, obj.size, obj.path)

Objects come back as :class:`S3Object`s whose data sit in temporary local files
(``.path``; ``.blob`` and ``.text`` read them), removed when the context ends. Many
keys move in parallel (a thread pool over one boto3 client; large objects with boto3's
multipart transfer manager), and every request is retried with backoff by botocore's
adaptive retry mode.

Where ``S3(run=...)`` writes: ``LEDGERFLOW_DATATOOLS_S3ROOT`` (as Metaflow's
``METAFLOW_DATATOOLS_S3ROOT``), else ``data/`` under an S3 datastore's root, followed by
``FLOW/RUN_ID``. ``LEDGERFLOW_S3_ENDPOINT_URL`` names an S3-compatible endpoint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerflow.exceptions import LedgerflowException

MAX_WORKERS = 16


class LedgerflowS3Exception(LedgerflowException):
    """An S3 call failed, or was asked for something it cannot do."""


class LedgerflowS3NotFound(LedgerflowS3Exception):
    """The object does not exist."""


@dataclass(frozen=True)
class S3GetObject:
    """A ranged read: `length` bytes of `key` from `offset` (None: to the end)."""

    key: str
    offset: int = 0
    length: int | None = None


@dataclass
class S3Object:
    """One object: ``url``, ``key`` (relative to the root), ``exists``, ``size``, and its
    data in the local file ``path`` (None when it does not exist or was only listed)."""

    url: str
    key: str
    exists: bool
    size: int | None = None
    path: str | None = None

    @property
    def blob(self) -> bytes:
        if self.path is None:
            raise LedgerflowS3NotFound(f"{self.url} does not exist (or was not downloaded)")
        return Path(self.path).read_bytes()

    @property
    def text(self) -> str:
        return self.blob.decode("utf-8")


def _default_root() -> str:
    root = os.environ.get("LEDGERFLOW_DATATOOLS_S3ROOT")
    if root:
        return root.rstrip("/")
    datastore = os.environ.get("LEDGERFLOW_DATASTORE_ROOT", "")
    if datastore.startswith("s3://"):
        return datastore.rstrip("/") + "/data"
    raise LedgerflowS3Exception(
        "S3(run=...) needs LEDGERFLOW_DATATOOLS_S3ROOT=s3://bucket/prefix (or an S3 "
        "datastore, LEDGERFLOW_DATASTORE_ROOT=s3://...); or give S3(s3root=...)"
    )


def s3_client(max_workers: int = MAX_WORKERS) -> Any:
    """A boto3 S3 client for `max_workers` threads at once, retrying with backoff, at
    LEDGERFLOW_S3_ENDPOINT_URL when set (an S3-compatible store)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("LEDGERFLOW_S3_ENDPOINT_URL") or None,
        config=Config(retries={"max_attempts": 10, "mode": "adaptive"},
                      max_pool_connections=max_workers),
    )  # fmt: skip


_shared_clients: dict[tuple[int, str, int], Any] = {}
_shared_lock = threading.Lock()


def shared_s3_client(max_workers: int = MAX_WORKERS) -> Any:
    """This process's client for `max_workers` threads at the current endpoint, made once:
    making one costs tens of milliseconds, and boto3 clients are thread-safe. A forked
    child makes its own (a client's connections must not be shared across processes)."""
    key = (os.getpid(), os.environ.get("LEDGERFLOW_S3_ENDPOINT_URL", ""), max_workers)
    with _shared_lock:
        if key not in _shared_clients:
            _shared_clients[key] = s3_client(max_workers)
        return _shared_clients[key]


def split_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise LedgerflowS3Exception(f"{url!r} is not an s3:// URL")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise LedgerflowS3Exception(f"{url!r} names no bucket")
    return bucket, key


class S3:
    """An S3 client bound to a root: ``S3(run=self)`` (the run's prefix),
    ``S3(s3root='s3://bucket/prefix')``, or ``S3()`` (full ``s3://`` URLs only)."""

    def __init__(
        self,
        *,
        run: Any = None,
        s3root: str | None = None,
        tmproot: str | None = None,
        max_workers: int = MAX_WORKERS,
    ) -> None:
        from boto3.s3.transfer import TransferConfig

        if run is not None and s3root is not None:
            raise LedgerflowS3Exception("give S3 either run= or s3root=, not both")
        if run is not None:
            from ledgerflow._current import current
            from ledgerflow._flowspec import FlowSpecBase

            if isinstance(run, FlowSpecBase):  # S3(run=self) in a step: the run it is part of
                flow, run_id = current.flow_name, current.run_id
            else:  # a client Run
                flow, run_id = run.flow_name, run.id
            s3root = f"{_default_root()}/{flow}/{run_id}"
        self.root = s3root.rstrip("/") if s3root else None
        if self.root is not None:
            split_url(self.root)
        self._client = s3_client(max_workers)
        self._transfer = TransferConfig(
            multipart_threshold=16 * 1024 * 1024,
            multipart_chunksize=16 * 1024 * 1024,
            max_concurrency=4,
        )
        self._pool = ThreadPoolExecutor(max_workers=max_workers)
        self._tmp = tempfile.mkdtemp(prefix="ledgerflow-s3-", dir=tmproot)
        self._count = 0

    # ---- context -------------------------------------------------------------------

    def __enter__(self) -> S3:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Removes the temporary files of every object got."""
        self._pool.shutdown(wait=True)
        shutil.rmtree(self._tmp, ignore_errors=True)

    # ---- addressing ------------------------------------------------------------------

    def _url(self, key: str) -> str:
        if key.startswith("s3://"):
            return key
        if self.root is None:
            raise LedgerflowS3Exception(
                f"{key!r} is relative, but this S3 has no root: use S3(run=...) or "
                "S3(s3root=...), or give a full s3:// URL"
            )
        return f"{self.root}/{key.lstrip('/')}"

    def _relative(self, url: str) -> str:
        if self.root is not None and url.startswith(self.root + "/"):
            return url[len(self.root) + 1 :]
        return url

    def _error(self, error: Exception, url: str) -> LedgerflowS3Exception:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound"):
            return LedgerflowS3NotFound(f"{url} does not exist")
        if code == "NoSuchBucket":
            return LedgerflowS3NotFound(f"the bucket of {url} does not exist")
        return LedgerflowS3Exception(f"S3 failed on {url}: {error}")

    # ---- writes ----------------------------------------------------------------------

    def put(self, key: str, obj: bytes | str, overwrite: bool = True) -> str:
        """Stores `obj` (bytes, or str as UTF-8) at `key`; returns its URL. With
        ``overwrite=False`` an existing object is left as it is."""
        from botocore.exceptions import ClientError

        url = self._url(key)
        bucket, name = split_url(url)
        data = obj.encode("utf-8") if isinstance(obj, str) else bytes(obj)
        try:
            if not overwrite and self._exists(bucket, name):
                return url
            self._client.put_object(Bucket=bucket, Key=name, Body=data)
        except ClientError as error:
            raise self._error(error, url) from None
        return url

    def put_many(
        self, items: Iterable[tuple[str, bytes | str]], overwrite: bool = True
    ) -> list[str]:
        """Stores many (key, obj) pairs in parallel; returns their URLs in order."""
        pairs = list(items)
        return list(self._pool.map(lambda pair: self.put(pair[0], pair[1], overwrite), pairs))

    def put_files(self, items: Iterable[tuple[str, str]], overwrite: bool = True) -> list[str]:
        """Uploads (key, local path) pairs in parallel (multipart for large files)."""
        from botocore.exceptions import ClientError

        def upload(pair: tuple[str, str]) -> str:
            url = self._url(pair[0])
            bucket, name = split_url(url)
            try:
                if overwrite or not self._exists(bucket, name):
                    self._client.upload_file(pair[1], bucket, name, Config=self._transfer)
            except ClientError as error:
                raise self._error(error, url) from None
            return url

        return list(self._pool.map(upload, list(items)))

    # ---- reads -----------------------------------------------------------------------

    def _exists(self, bucket: str, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=bucket, Key=name)
            return True
        except ClientError as error:
            if isinstance(self._error(error, name), LedgerflowS3NotFound):
                return False
            raise

    def _local_path(self) -> str:
        self._count += 1
        return os.path.join(self._tmp, f"object-{self._count}")

    def get(self, key: str | S3GetObject, return_missing: bool = False) -> S3Object:
        """Downloads one object (a key, a URL, or an S3GetObject range). A missing object
        raises LedgerflowS3NotFound, or with ``return_missing`` comes back with
        ``exists=False``."""
        from botocore.exceptions import ClientError

        ranged = key if isinstance(key, S3GetObject) else None
        url = self._url(ranged.key if ranged else str(key))
        bucket, name = split_url(url)
        path = self._local_path()
        try:
            if ranged is not None and (ranged.offset or ranged.length is not None):
                end = "" if ranged.length is None else str(ranged.offset + ranged.length - 1)
                response = self._client.get_object(
                    Bucket=bucket, Key=name, Range=f"bytes={ranged.offset}-{end}"
                )
                Path(path).write_bytes(response["Body"].read())
            else:
                self._client.download_file(bucket, name, path, Config=self._transfer)
        except ClientError as error:
            failure = self._error(error, url)
            if return_missing and isinstance(failure, LedgerflowS3NotFound):
                return S3Object(url, self._relative(url), exists=False)
            raise failure from None
        return S3Object(url, self._relative(url), True, os.path.getsize(path), path)

    def get_many(
        self, keys: Sequence[str | S3GetObject], return_missing: bool = False
    ) -> list[S3Object]:
        """Downloads many objects in parallel, in the order given."""
        return list(self._pool.map(lambda key: self.get(key, return_missing), keys))

    def _listed(self, prefix_url: str) -> list[tuple[str, int]]:
        from botocore.exceptions import ClientError

        bucket, prefix = split_url(prefix_url)
        found: list[tuple[str, int]] = []
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        try:
            for page in pages:
                for listed in page.get("Contents", []):
                    found.append((f"s3://{bucket}/{listed['Key']}", listed["Size"]))
        except ClientError as error:
            raise self._error(error, prefix_url) from None
        return found

    def list_paths(self, keys: Sequence[str] = ("",)) -> list[S3Object]:
        """The objects under each prefix (not downloaded: ``path`` is None)."""
        return [
            S3Object(url, self._relative(url), True, size)
            for key in keys
            for url, size in self._listed(self._url(key))
        ]

    def get_recursive(self, keys: Sequence[str]) -> list[S3Object]:
        """Downloads every object under each prefix, in parallel."""
        urls = [url for key in keys for url, _ in self._listed(self._url(key))]
        return self.get_many(urls)

    def get_all(self) -> list[S3Object]:
        """Every object under the root."""
        return self.get_recursive([""])
