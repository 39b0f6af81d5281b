"""Hosting's API over real HTTP on loopback: typed requests (422 naming each field, the
endpoint not called), HTTPError, async endpoints, numpy and pandas answers, the body
limit flag, /docs, accept(run) refusing a run, --pin, and a model class kept beside the
flow file. Embedded and service mode (see conftest.flow_env)."""

from __future__ import annotations

import http.client
import math
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hosting_server import SERVICES, call, hosting, post
from waiting import wait_for

pytestmark = pytest.mark.slow
TYPED = SERVICES / "typed_service.py"
FLOWS = Path(__file__).parent / "flows"

# (body, the fields named): each is answered 422 and predict is not called.
INVALID_PREDICTIONS = [
    ({}, ["age", "income"]),
    ({"age": "old", "income": 1}, ["age"]),
    ({"age": 200, "income": 1}, ["age"]),
    ({"age": -1, "income": 1}, ["age"]),
    ({"age": 30, "income": "lots"}, ["income"]),
    ({"age": 30, "income": 1, "tags": "vip"}, ["tags"]),
    ({"age": 30, "income": 1, "tags": ["vip", 3]}, ["tags.1"]),
    ({"age": 30, "income": 1, "address": {"city": "Paris"}}, ["address.zip"]),
    ({"age": 30, "income": 1, "address": {"city": "Paris", "zip": "75"}}, ["address.zip"]),
    ({"age": 30, "income": 1, "address": "Paris"}, ["address"]),
]


def _latest(flow: str = "HostedFlow") -> str:
    from ledgerflow import Flow

    return Flow(flow).latest_run.pathspec


def test_typed_requests_name_each_bad_field_and_change_nothing(flow_env) -> None:
    flow_env.run("hosted_flow", "run")
    with hosting(flow_env, "HostedFlow", service=TYPED) as url:
        good = {"age": 30, "income": 20.5, "address": {"city": "Paris", "zip": "75001"}}
        status, body, headers = post(f"{url}/predict", good)
        assert (status, body) == (200, {"score": 31.5, "run": _latest(), "tags": []})
        assert headers["x-ledgerflow-run"] == _latest()
        # GET's query parameters are converted as the model says; a list's, repeated.
        status, body, _ = call(f"{url}/predict?age=3&income=2&tags=vip&tags=new")
        assert (status, body) == (200, {"score": 3.0, "run": _latest(), "tags": ["vip", "new"]})
        assert call(f"{url}/predict?age=3&income=2&tags=vip")[1]["tags"] == ["vip"]
        for bad, fields in INVALID_PREDICTIONS:
            status, body, headers = post(f"{url}/predict", bad)
            assert status == 422, (bad, body)
            assert [field["field"] for field in body["fields"]] == fields, (bad, body)
            assert body["error"].startswith("invalid request: ")
            assert all(f"{field}: " in body["error"] for field in fields)
            assert headers["x-ledgerflow-run"] == _latest()
        status, body, _ = call(f"{url}/predict?age=ten&income=2")
        assert status == 422 and [f["field"] for f in body["fields"]] == ["age"]
        assert "valid integer" in body["fields"][0]["message"]
        for not_an_object, error in [(b"{not json", "not JSON"), (b"[1, 2]", "a JSON object"),
                                     (b'"age"', "a JSON object")]:  # fmt: skip
            status, body, _ = call(f"{url}/predict", not_an_object)
            assert status == 400 and error in body["error"]
        status, body, _ = call(f"{url}/add?a=1")
        assert status == 422 and body["fields"][0]["field"] == "b"
        # Nothing changed: predict ran for the three good requests only.
        assert call(f"{url}/calls")[:2] == (200, {"predict": 3})
        assert call(f"{url}/ready")[1]["run"] == _latest()


def test_docs_and_openapi_list_the_endpoints_and_their_fields(flow_env) -> None:
    flow_env.run("hosted_flow", "run")
    with hosting(flow_env, "HostedFlow", service=TYPED) as url:
        status, page, headers = call(f"{url}/docs")
        assert status == 200 and headers["content-type"].startswith("text/html")
        for name in ("/predict", "/calls", "/lookup", "/add", "/arrays"):
            assert f"GET | POST {name}</code>" in page
        assert "Scores one customer." in page and "less the age." in page
        for field in ("age", "income", "tags", "address", "id", "a", "b"):
            assert f"<td><code>{field}</code></td>" in page
        assert "<td>Years, 0 to 150.</td>" in page and "Address | null" in page
        spec = call(f"{url}/openapi.json")[1]
        assert set(spec["paths"]) == {"/predict", "/calls", "/lookup", "/add", "/arrays"}
        predict = spec["paths"]["/predict"]
        schema = predict["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Features"}
        features = spec["components"]["schemas"]["Features"]
        assert set(features["required"]) == {"age", "income"}
        assert features["properties"]["age"]["maximum"] == 150
        assert "Address" in spec["components"]["schemas"]
        assert {p["name"] for p in predict["get"]["parameters"]} == {
            "age", "income", "tags", "address"
        }  # fmt: skip
        assert {"200", "400", "413", "422", "4XX", "500", "503"} <= set(
            predict["post"]["responses"]
        )
        answer = predict["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": "#/components/schemas/Score"}
        assert "422" not in spec["paths"]["/calls"]["get"]["responses"]


def test_http_errors_async_endpoints_and_data_answers(flow_env) -> None:
    flow_env.run("hosted_flow", "run", "--x", "4")
    with hosting(flow_env, "HostedFlow", service=TYPED) as url:
        assert call(f"{url}/lookup?id=1")[:2] == (200, {"name": "Ada"})
        status, body, headers = call(f"{url}/lookup?id=99")
        assert (status, body) == (404, {"error": "no customer 99"})
        assert headers["x-ledgerflow-run"] == _latest()
        assert post(f"{url}/lookup", {"id": 2})[:2] == (403, {"error": {"reason": "private",
                                                                       "id": 2}})  # fmt: skip
        assert post(f"{url}/lookup", {"id": "two"})[0] == 422
        # async def: awaited on the server's loop, many at once.
        answers: list[tuple[int, Any]] = []

        def add(a: int) -> None:
            answers.append(post(f"{url}/add", {"a": a, "b": 1})[:2])

        threads = [threading.Thread(target=add, args=(a,)) for a in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers, key=lambda a: a[1]["sum"]) == [
            (200, {"sum": a + 1, "x": 4}) for a in range(20)
        ]
        status, body, _ = call(f"{url}/arrays")
        assert status == 200
        assert body == {
            "count": 4, "mean": 1.5, "ok": True, "vector": [1.0, None, 2.5],
            "matrix": [[0, 1], [2, 3]], "frame": [{"a": 1, "b": 0.5}, {"a": 2, "b": None}],
            "column": [1, 2],
        }  # fmt: skip
        assert isinstance(body["count"], int) and not math.isnan(body["mean"])


def _chunked_post(url: str, size: int) -> tuple[int, bytes]:
    """POSTs `size` bytes in chunks, with no Content-Length (the server must count)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    payload = b'{"x": "' + b"a" * (size - 10) + b'"}'
    chunks = iter([payload[:100], payload[100:]])
    headers = {"Content-Type": "application/json"}
    connection.request("POST", "/echo", body=chunks, headers=headers, encode_chunked=True)
    response = connection.getresponse()
    try:
        return response.status, response.read()
    finally:
        connection.close()


def test_the_body_limit_is_a_flag(flow_env) -> None:
    flow_env.run("hosted_flow", "run")
    with hosting(flow_env, "HostedFlow", "--max-body", "1KiB") as url:
        within = {"k": "a" * 1000}
        assert post(f"{url}/echo", within)[:2] == (200, {"got": within})
        status, body, _ = post(f"{url}/echo", {"k": "a" * 1100})
        assert (status, body) == (413, {"error": "the body is over 1,024 bytes"})
        status, raw = _chunked_post(url, 2048)
        assert status == 413 and b"over 1,024 bytes" in raw
        assert _chunked_post(url, 900)[0] == 200
    for bad in ("lots", "0", "-5", "12 parsecs"):
        refused = subprocess.run(
            [sys.executable, "-m", "ledgerflow", "host", "serve", str(SERVICES / "talk_service.py"),
             "--flow", "HostedFlow", "--max-body", bad],
            env=flow_env.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 2 and "is not a size" in refused.stderr, refused.stderr


def test_accept_refuses_a_run_and_the_served_one_goes_on(flow_env) -> None:
    flow_env.run("hosted_flow", "run", "--x", "3")
    good = _latest()
    flow_env.run("hosted_flow", "run", "--x", "-1")
    broken = _latest()
    log: list[str] = []
    with hosting(flow_env, "HostedFlow", service=TYPED, log=log) as url:
        # At the start, the newest run accept() takes: the one before the refused one.
        assert call(f"{url}/ready")[1] == {"ready": True, "run": good}
        assert any(f"not switching to {broken}: ValueError: x is -1, a negative x is a broken "
                   f"model (serving no run)" in line for line in log)  # fmt: skip
        flow_env.run("hosted_flow", "run", "--x", "5")
        newer = _latest()
        wait_for(lambda: call(f"{url}/ready")[1].get("run") == newer, 10, "the accepted run")
        assert call(f"{url}/add?a=1&b=1")[1] == {"sum": 2, "x": 5}
        flow_env.run("hosted_flow", "run", "--x", "-2")
        refused = _latest()
        wait_for(
            lambda: any(f"not switching to {refused}: ValueError: x is -2" in line and
                        f"(serving {newer})" in line for line in log),
            10, "the refusal in the log",
        )  # fmt: skip
        # The served run goes on, and answers as before.
        status, body, headers = call(f"{url}/add?a=1&b=1")
        assert (status, body, headers["x-ledgerflow-run"]) == (200, {"sum": 2, "x": 5}, newer)
        assert call(f"{url}/ready")[1] == {"ready": True, "run": newer}


def test_pin_serves_one_run_and_never_switches(flow_env) -> None:
    flow_env.run("hosted_flow", "run", "--x", "3")
    pinned = _latest()
    flow_env.run("hosted_flow", "run", "--x", "5")
    run_id = pinned.split("/")[1]
    with (
        hosting(flow_env, "HostedFlow", "--pin", run_id) as url,
        hosting(flow_env, "HostedFlow", "--pin", pinned) as by_pathspec,
        hosting(flow_env, "HostedFlow") as following,
    ):
        for base in (url, by_pathspec):
            status, body, headers = call(f"{base}/show_data")
            assert (status, body, headers["x-ledgerflow-run"]) == (200, {"result": 3}, pinned)
            assert call(f"{base}/ready")[1] == {"ready": True, "run": pinned, "pinned": True}
        assert call(f"{following}/show_data")[1] == {"result": 5}
        flow_env.run("hosted_flow", "run", "--x", "7")
        wait_for(lambda: call(f"{following}/show_data")[1] == {"result": 7}, 10, "the new run")
        for base in (url, by_pathspec):
            assert call(f"{base}/show_data")[:2] == (200, {"result": 3})
    serve = [sys.executable, "-m", "ledgerflow", "host", "serve",
             str(SERVICES / "talk_service.py"), "--flow", "HostedFlow"]  # fmt: skip
    for options, code, message in [
        (["--pin", "12345"], 1, "12345"),
        (["--pin", "OtherFlow/1"], 1, "--pin OtherFlow/1 is a run of OtherFlow, not of HostedFlow"),
        (["--pin", run_id, "--namespace", "user:tester"], 2, "--namespace has nothing to choose"),
    ]:
        refused = subprocess.run(
            serve + options, env=flow_env.env, cwd=flow_env.home, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == code and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


def _project(tmp_path: Path, *, with_service: bool = False) -> Path:
    """A folder holding model_flow.py and the module beside it (and the service)."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("model_flow.py", "hosted_model.py"):
        shutil.copy(FLOWS / name, project / name)
    if with_service:
        shutil.copy(SERVICES / "model_service.py", project / "model_service.py")
    return project


def _run(flow_env: Any, project: Path, *args: str) -> None:
    """Runs the project's flow from the test's home folder (not the project's)."""
    subprocess.run(
        [sys.executable, str(project / "model_flow.py"), "--no-pylint", "run", *args],
        env={**flow_env.env, "USERNAME": "tester"}, cwd=flow_env.home, check=True,
        capture_output=True, timeout=120,
    )  # fmt: skip


def test_a_model_beside_the_flow_imports_from_the_runs_code_package(flow_env, tmp_path) -> None:
    project = _project(tmp_path)
    _run(flow_env, project, "--code-package")
    # The service lives elsewhere, and the server runs in neither folder.
    service = SERVICES / "model_service.py"
    with hosting(flow_env, "ModelFlow", service=service) as url:
        assert call(f"{url}/predict?x=5")[:2] == (200, {"y": 10, "version": 1})
        # A run with other code: its artifacts meet its own classes.
        module = project / "hosted_model.py"
        module.write_text(module.read_text().replace("VERSION = 1", "VERSION = 2"))
        _run(flow_env, project, "--code-package", "--factor", "3")
        wait_for(lambda: call(f"{url}/predict?x=5")[1] == {"y": 15, "version": 2}, 10, "v2")
        assert call(f"{url}/ready")[1]["run"] == _latest("ModelFlow")


def test_a_model_beside_the_service_file_imports_without_a_code_package(flow_env, tmp_path) -> None:
    project = _project(tmp_path, with_service=True)
    _run(flow_env, project)
    with hosting(flow_env, "ModelFlow", service=project / "model_service.py") as url:
        status, body, headers = call(f"{url}/predict?x=5")
        assert (status, body) == (200, {"y": 10, "version": 1})
        assert headers["x-ledgerflow-run"] == _latest("ModelFlow")


def test_switching_code_forgets_the_packages_modules_but_not_the_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A code package's own modules are forgotten at a switch (the next run brings its
    own); one named like a module the server runs on (json.py) shadows nothing."""
    import json

    from ledgerflow.hosting.code import _forget

    package = tmp_path / "package"
    package.mkdir()
    (package / "served_model_here.py").write_text("VALUE = 1\n")
    (package / "json.py").write_text("raise ImportError('the package json.py was imported')\n")
    monkeypatch.syspath_prepend(str(package))
    import served_model_here  # type: ignore[import-not-found]

    assert served_model_here.VALUE == 1
    forgotten = _forget(package)
    assert "served_model_here" in forgotten and "served_model_here" not in sys.modules
    assert sys.modules["json"] is json and "json" not in forgotten
