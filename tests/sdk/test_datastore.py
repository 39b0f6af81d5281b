"""The content-addressed datastore, on a local folder and on S3 (moto's server over HTTP
on loopback)."""

from __future__ import annotations

from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from ledgerflow.datastore.content import (
    R_SERIALIZER,
    ArtifactSerializationError,
    ContentStore,
    LocalStorage,
    RValue,
    S3Storage,
    _frame,
)


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ContentStore:
    if request.param == "local":
        return ContentStore(LocalStorage(tmp_path / "data"))
    endpoint = request.getfixturevalue("s3_endpoint")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    bucket = f"bucket-{abs(hash(str(tmp_path))) % 10**8}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return ContentStore(S3Storage(f"s3://{bucket}/ledgerflow", endpoint_url=endpoint))


def test_values_round_trip(store: ContentStore) -> None:
    values = [
        b"raw bytes",
        {"a": [1, 2.5, None]},
        "text",
        np.arange(10.0),
        pd.DataFrame({"x": [1, 2], "y": ["a", None]}),
    ]
    for value in values:
        stored = store.save(value)
        loaded = store.load(stored.key, stored.serializer)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded, value)
        elif isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(loaded, value)
        else:
            assert loaded == value


def test_equal_values_are_stored_once(store: ContentStore) -> None:
    first = store.save([1, 2, 3])
    second = store.save([1, 2, 3])
    assert first.key == second.key
    assert store.save([1, 2, 4]).key != first.key


def test_serializers_fit_the_data(store: ContentStore) -> None:
    assert store.save(b"x" * 1000).serializer == "raw"
    array = np.random.default_rng(0).random(1000)
    stored = store.save(array)
    assert stored.serializer == "pickle5" and stored.type_name == "numpy.ndarray"
    assert stored.size < array.nbytes + 400  # raw buffer, no pickle or gzip overhead
    assert store.save([f"row {i} of a table" for i in range(20000)]).serializer == "pickle5+zlib"
    loaded = store.load(stored.key, stored.serializer)
    loaded[0] = -1.0  # arrays come back writable


def test_large_values_use_multipart(store: ContentStore) -> None:
    blob = np.random.default_rng(1).bytes(40 * 1024 * 1024)
    stored = store.save(blob)
    assert store.load(stored.key, stored.serializer) == blob


def test_unpicklable_values_raise_a_clear_error(store: ContentStore) -> None:
    with pytest.raises(ArtifactSerializationError, match="pickle"):
        store.save(lambda: 1)


def test_a_missing_key_is_a_key_error(store: ContentStore) -> None:
    with pytest.raises(KeyError, match="not in"):
        store.load("0" * 64, "raw")


def test_a_big_repetitive_r_value_round_trips(store: ContentStore) -> None:
    """R values over 64 KiB that compress well were stored compressed under a serializer
    that says nothing of compression, and read back as nothing (issue 30's data loss)."""
    rds = b"X\n\x00\x00\x00\x03" + b"\x00" * 800_000  # rep(0, 1e5)'s serialization, roughly
    stored = store.save(RValue(rds=rds, r_class="numeric", length=100_000, python=[0.0] * 10,
                               has_python=True))  # fmt: skip
    assert stored.serializer == R_SERIALIZER
    assert bytes(store.load_rds(stored.key)) == rds
    assert store.load(stored.key, stored.serializer) == [0.0] * 10
    # What an earlier version stored (compressed, same serializer) still reads back.
    packed = (rds, "numeric", True, [1.0])
    parts, serializer = _frame(packed)
    assert serializer == "pickle5+zlib"
    key = "legacy-r-value"
    store.storage.put(key, parts)
    assert bytes(store.load_rds(key)) == rds
    assert store.load(key, R_SERIALIZER) == [1.0]
