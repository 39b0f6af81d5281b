"""Table read benchmark: a Parquet dataset of 16 files (256 MB by default) read with
`Table(...).to_arrow()` from moto's S3 server and from a local folder, against a plain
loop (one `get_object` then `pyarrow.parquet.read_table` per file, one file after the
other) on S3 and against pyarrow reading the local files directly. Prints MB/s.

    python bench/tables.py [--rows 8000000] [--files 16] [--repeat 3]

The datasets are written by a flow (bench/flows/wide_table.py) on an embedded ledger in
a scratch folder; moto's server runs in a process of its own on loopback. The goals in
the issue: at least 3x the plain loop on S3, and within 1.5x of pyarrow on local files.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from services import free_port, wait_port

HERE = Path(__file__).resolve().parent
FLOW = HERE / "flows" / "wide_table.py"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def best_of(repeat: int, read: Callable[[], Any]) -> float:
    """The fastest of `repeat` reads, in seconds (each read's rows are checked)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        read()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8_000_000, help="8 MB per million")
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            run(args, Path(scratch), endpoint)
        finally:
            moto.terminate()
            moto.wait(10)


def run(args: argparse.Namespace, scratch: Path, endpoint: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env.update(CREDENTIALS, LEDGERFLOW_HOME=str(scratch / ".ledgerflow"), LEDGERFLOW_PYLINT="0",
               LEDGERFLOW_S3_ENDPOINT_URL=endpoint)  # fmt: skip
    os.environ.update({k: v for k, v in env.items() if k.startswith(("LEDGERFLOW_", "AWS_"))})
    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq
    from ledgerflow import Table
    from ledgerflow._s3 import s3_client, split_url

    wait_port(int(endpoint.rsplit(":", 1)[1]), "moto's server")
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    for name, root in (("local", str(scratch / "tables")), ("s3", "s3://bench/tables")):
        print(f"writing bench/{name} ({args.rows:,} rows in {args.files} files) ...", flush=True)
        subprocess.run(
            [sys.executable, str(FLOW), "run", "--table", name, "--rows", str(args.rows),
             "--files", str(args.files)],
            env={**env, "LEDGERFLOW_TABLE_ROOT": root}, cwd=scratch, check=True,
            capture_output=True,
        )  # fmt: skip

    local, remote = Table("bench", "local").version(), Table("bench", "s3").version()
    megabytes = remote.num_bytes / 1e6
    client = s3_client()
    bucket, prefix = split_url(remote.location)

    def plain_s3_loop() -> pa.Table:
        parts = []
        for name in remote.files:
            body = client.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read()
            parts.append(pq.read_table(pa.BufferReader(body)))
        return checked(pa.concat_tables(parts))

    def checked(table: pa.Table) -> pa.Table:
        assert table.num_rows == args.rows, table.num_rows
        return table

    def parallel_gets_only() -> None:
        with ThreadPoolExecutor(len(remote.files)) as pool:
            list(pool.map(lambda name: client.get_object(Bucket=bucket, Key=f"{prefix}/{name}")[
                "Body"].read(), remote.files))  # fmt: skip

    figures = {
        "S3, plain loop (get_object + read_table)": best_of(args.repeat, plain_s3_loop),
        "S3, Table.to_arrow()": best_of(
            args.repeat, lambda: checked(Table("bench", "s3").to_arrow())
        ),
        "local, pyarrow.parquet.read_table(folder)": best_of(
            args.repeat, lambda: checked(pq.read_table(local.location))
        ),
        "local, Table.to_arrow()": best_of(
            args.repeat, lambda: checked(Table("bench", "local").to_arrow())
        ),
    }
    print(f"\n{megabytes:.0f} MB of Parquet in {len(remote.files)} files, best of {args.repeat}:")
    for label, seconds in figures.items():
        print(f"  {label:<44} {seconds:6.2f} s  {megabytes / seconds:7.0f} MB/s")
    values = list(figures.values())
    floor = best_of(args.repeat, parallel_gets_only)
    print(f"  {'S3, the GETs alone, all at once (no parsing)':<44} {floor:6.2f} s  "
          f"{megabytes / floor:7.0f} MB/s")  # fmt: skip
    print(f"\nS3: Table.to_arrow() is {values[0] / values[1]:.1f}x the plain loop (goal >= 3x)")
    print(f"local: Table.to_arrow() takes {values[3] / values[2]:.2f}x pyarrow's time "
          "(goal <= 1.5x)")  # fmt: skip


if __name__ == "__main__":
    main()
