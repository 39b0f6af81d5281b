"""ledgerflow.S3 against moto's S3 server over real HTTP (loopback)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from conftest import S3_CREDENTIALS
from ledgerflow import S3, Flow, S3GetObject
from ledgerflow._s3 import LedgerflowS3Exception, LedgerflowS3NotFound


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
           ) -> Iterator[str]:  # fmt: skip
    for key, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LEDGERFLOW_S3_ENDPOINT_URL", s3_endpoint)
    name = f"s3-tool-{abs(hash(request.node.nodeid)) % 10**8}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    yield name


def test_put_get_and_many(bucket: str) -> None:
    with S3(s3root=f"s3://{bucket}/root") as s3:
        url = s3.put("a.txt", "alpha")
        assert url == f"s3://{bucket}/root/a.txt"
        assert s3.get("a.txt").text == "alpha"
        urls = s3.put_many([(f"many/{i}", bytes([i]) * (i + 1)) for i in range(20)])
        assert len(urls) == 20
        got = s3.get_many([f"many/{i}" for i in range(20)])
        assert [o.blob for o in got] == [bytes([i]) * (i + 1) for i in range(20)]
        assert [o.key for o in got] == [f"many/{i}" for i in range(20)]
        listed = s3.list_paths(["many/"])
        assert sorted(o.key for o in listed) == sorted(f"many/{i}" for i in range(20))
        assert all(o.path is None and o.size for o in listed)
        everything = s3.get_recursive(["many/"])
        assert sum(o.size or 0 for o in everything) == sum(i + 1 for i in range(20))
        assert {o.key for o in s3.get_all()} == {"a.txt", *(f"many/{i}" for i in range(20))}
        s3.put("a.txt", "changed", overwrite=False)
        assert s3.get("a.txt").text == "alpha"
        assert s3.get(f"s3://{bucket}/root/a.txt").text == "alpha"  # a full URL works too


def test_ranged_reads_and_large_files(bucket: str, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    data = os.urandom(20 * 1024 * 1024)  # over the multipart threshold
    big.write_bytes(data)
    with S3(s3root=f"s3://{bucket}") as s3:
        s3.put_files([("big.bin", str(big))])
        assert s3.get("big.bin").blob == data
        assert s3.get(S3GetObject("big.bin", offset=100, length=50)).blob == data[100:150]
        assert s3.get(S3GetObject("big.bin", offset=len(data) - 10)).blob == data[-10:]


def test_missing_objects_and_bad_roots(bucket: str) -> None:
    with S3(s3root=f"s3://{bucket}/none") as s3:
        with pytest.raises(LedgerflowS3NotFound, match="does not exist"):
            s3.get("nope")
        missing = s3.get("nope", return_missing=True)
        assert not missing.exists and missing.path is None
        with pytest.raises(LedgerflowS3NotFound):
            _ = missing.blob
        assert s3.list_paths(["empty/"]) == []
    with S3() as s3, pytest.raises(LedgerflowS3Exception, match="relative"):
        s3.get("relative-key")
    with pytest.raises(LedgerflowS3Exception, match="not an s3:// URL"):
        S3(s3root="/local/folder")
    with S3(s3root="s3://no-such-bucket-here/x") as s3, pytest.raises(LedgerflowS3NotFound):
        s3.put("k", "v")


def test_temporary_files_are_removed_on_exit(bucket: str, tmp_path: Path) -> None:
    with S3(s3root=f"s3://{bucket}", tmproot=str(tmp_path)) as s3:
        s3.put("t", "x" * 100)
        path = Path(str(s3.get("t").path))
        assert path.exists()
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_step_writes_and_the_next_reads_with_the_runs_root(
    flow_env, bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**S3_CREDENTIALS, "LEDGERFLOW_S3_ENDPOINT_URL": s3_endpoint,
           "LEDGERFLOW_DATATOOLS_S3ROOT": f"s3://{bucket}/tools"}  # fmt: skip
    flow_env.run("s3_flow", "run", extra_env=env)
    run = Flow("S3Flow").latest_run
    assert run.data.read_back == "hello from start"
    assert run["start"].task.data.url == f"s3://{bucket}/tools/S3Flow/{run.id}/greeting.txt"
    monkeypatch.setenv("LEDGERFLOW_DATATOOLS_S3ROOT", f"s3://{bucket}/tools")
    with S3(run=run) as s3:  # a client Run names the same prefix
        assert s3.get("greeting.txt").text == "hello from start"
