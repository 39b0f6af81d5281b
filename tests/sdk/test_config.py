"""Configs (Metaflow's ``Config`` and ``config_expr``) through the flow's real command
line: a value from --config-value, a file or a default reaches the steps, the decorators
(in the recorded graph), the Parameter defaults and the client; resume reuses the
origin's; every bad input is one line of error and no run. The remote case is in
tests/executor/test_configs_remote.py."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from conftest import FLOWS, FlowEnv
from ledgerflow import Config, Flow, FlowSpec, Ledgerflow, Parameter, Runner, config_expr
from ledgerflow._flow_config import ConfigValue
from ledgerflow._graph import InvalidGraph
from ledgerflow.cards import get_cards
from ledgerflow.cli.flow_configs import flow_configs
from ledgerflow.cli.flow_options import flow_parameters
from ledgerflow.client import _clients
from ledgerflow.datastore.content import ContentStore, LocalStorage
from ledgerflow.datastore.safe_load import load_data_only
from ledgerflow.v1 import query_service_pb2

# What config_flow.py runs with in these tests (its default_value differs throughout).
GIVEN = {
    "alpha": 0.9,
    "retries": 3,
    "resources": {"cpu": 1, "memory": 512},
    "timeout": 30,
    "model": {"lr": 0.1, "layers": [2], "name": "big"},
    "env": {"GREETING": "hi"},
    "card": "default",
}
NO_LINT = "--no-pylint"
embedded_only = pytest.mark.parametrize("flow_env", ["embedded"], indirect=True)


def _graph(flow: str, run_id: str) -> dict[str, Any]:
    """The recorded graph's steps by name."""
    metadata, _ = _clients()
    asked = query_service_pb2.GetRunRequest(flow_name=flow, run_id=run_id, include_graph=True)
    return {spec.name: spec for spec in metadata.get_run(asked).graph.steps}


def _write_files(home: Path) -> None:
    """config_file_flow.py's files, in the folder it runs in."""
    settings = {"greeting": "hej", "project": "pricing", "cron": "0 3 * * *", "event": "ready"}
    (home / "settings.json").write_text(json.dumps(settings))
    (home / "limits.txt").write_text("memory_mb = 300\n# a comment\nregion = eu\n")
    (home / "bad_limits.txt").write_text("memory_mb = 300\nbroken\n")
    (home / "other.toml").write_text(
        'greeting = "moi"\nproject = "tomlish"\ncron = "0 4 * * *"\nevent = "other"\n'
    )
    (home / "bad.json").write_text('{"alpha": 1,')
    (home / "bad_project.json").write_text(json.dumps({**settings, "project": "Not-Valid"}))


@pytest.mark.slow
def test_a_config_value_reaches_steps_decorators_defaults_and_the_client(
    flow_env: FlowEnv,
) -> None:
    flow_env.run("config_flow", NO_LINT, "--config-value", "config", json.dumps(GIVEN), "run")
    run = Flow("ConfigFlow").latest_run
    start = run["start"].task
    assert (start.data.lr, start.data.name, start.data.greeting) == (0.1, "big", "hi")
    # Assigning to the config, inside it or to self.config: each refused in the step.
    assert start.data.refused == ["AttributeError", "TypeError", "AttributeError"]
    assert "cannot set self.config in step 'start': it is a Config" in start.data.last_refusal
    # The Parameter defaults read the config; @catch's var was built from it.
    train = run["train"].task
    assert train.data.seen == (0.9, [2], 0.9)
    assert "big_error" in train and train["big_error"].data is None
    # The decorators' values, as the run recorded its graph.
    steps = _graph("ConfigFlow", run.id)
    start_spec = steps["start"]
    assert (start_spec.retries, start_spec.resources.cpu, start_spec.resources.memory_mb) == (
        3, 1, 512,
    )  # fmt: skip
    assert start_spec.timeout_seconds == 30
    assert (steps["train"].catch, steps["train"].catch_var) == (True, "big_error")
    assert [card.type for card in get_cards(start)] == ["default"]  # @card(type=config.card)
    # The client reads the recorded value back: keys as attributes or items, read-only.
    config = run.data.config
    assert isinstance(config, ConfigValue) and config.to_dict() == GIVEN
    assert (config.model.lr, config["model"]["layers"], config.resources.cpu) == (0.1, (2,), 1)
    with pytest.raises(AttributeError, match="read-only"):
        config.alpha = 1
    with pytest.raises(TypeError, match="read-only"):
        config.model["lr"] = 1  # type: ignore[index]
    dict(run.data.config.model)  # a Mapping: dict() and ** work on it


@pytest.mark.slow
def test_without_options_the_default_value_applies_and_parameters_still_override(
    flow_env: FlowEnv,
) -> None:
    flow_env.run("config_flow", NO_LINT, "run", "--alpha", "0.25")
    run = Flow("ConfigFlow").latest_run
    assert run["train"].task.data.seen == (0.25, [8, 4], 0.5)  # --alpha wins over the config
    assert run.data.config.model.name == "small"
    steps = _graph("ConfigFlow", run.id)
    assert (steps["start"].retries, steps["start"].resources.cpu) == (1, 2)
    assert steps["train"].catch_var == "small_error"


@pytest.mark.slow
def test_configs_from_files_a_parser_and_toml_set_flow_decorators(flow_env: FlowEnv) -> None:
    _write_files(flow_env.home)
    # settings.json from the current folder (its default), limits through its parser.
    flow_env.run("config_file_flow", NO_LINT, "--config", "limits", "limits.txt", "run")
    run = Flow("ConfigFileFlow").latest_run
    assert (run.data.settings.greeting, run.data.limits.region) == ("hej", "eu")
    assert run["start"].task.data.memory_mb == "300"  # the parser's text
    assert _graph("ConfigFileFlow", run.id)["start"].resources.memory_mb == 600
    assert "project:pricing" in run.system_tags  # @project(name=config_expr(...))
    # A TOML file given for settings instead.
    flow_env.run("config_file_flow", NO_LINT, "--config", "settings", "other.toml",
                 "--config", "limits", "limits.txt", "run")  # fmt: skip
    run = Flow("ConfigFileFlow").latest_run
    assert run.data.settings.greeting == "moi" and "project:tomlish" in run.system_tags


@pytest.mark.slow
@pytest.mark.parametrize("flow_env", ["service"], indirect=True)
def test_deploy_gives_the_service_plain_values(flow_env: FlowEnv) -> None:
    _write_files(flow_env.home)
    result = flow_env.run("config_file_flow", "--config", "limits", "limits.txt", "deploy")
    assert "Deployed pricing.user.tester.ConfigFileFlow" in result.stdout
    metadata, _ = _clients()
    deployment = metadata.deployment("pricing.user.tester.ConfigFileFlow")
    assert deployment.project == "pricing" and deployment.schedule.cron == "0 3 * * *"
    assert list(deployment.trigger_on_events) == ["ready"]
    assert json.loads(deployment.parameters["limits"])["memory_mb"] == "300"
    assert json.loads(deployment.parameters["settings"])["greeting"] == "hej"


@pytest.mark.slow
@embedded_only
def test_resume_reuses_the_origin_runs_configs(flow_env: FlowEnv) -> None:
    failed = flow_env.run(
        "config_flow", NO_LINT, "--config-value", "config", json.dumps(GIVEN), "run",
        extra_env={"CONFIG_FLOW_FAIL": "1"}, check=False,
    )  # fmt: skip
    assert failed.returncode == 1 and "failing as asked" in failed.stdout + failed.stderr
    origin = Flow("ConfigFlow").latest_run
    # No config given: a new run would take the default_value; the resume takes the
    # origin's, and each task started by the task entry point reads it from the ledger.
    flow_env.run("config_flow", NO_LINT, "resume", "--launcher", "command")
    resumed = Flow("ConfigFlow").latest_run
    assert resumed.id != origin.id and resumed.successful
    assert resumed.data.config.to_dict() == GIVEN and resumed.data.alpha == 0.9
    assert _graph("ConfigFlow", resumed.id)["start"].retries == 3
    assert "trained big at 0.9" in resumed["end"].task.stdout


@embedded_only
def test_show_prints_the_resolved_values(flow_env: FlowEnv) -> None:
    shown = flow_env.run("config_flow", "--config-value", "config", json.dumps(GIVEN), "show")
    assert "--alpha FLOAT = 0.9: The learning rate" in shown.stdout
    assert "--layers JSON = [2]" in shown.stdout
    assert f"configs:\n  config = {json.dumps(GIVEN)}: The model and its resources." in (
        shown.stdout
    )
    checked = flow_env.run("config_flow", "--config-value", "config", json.dumps(GIVEN), "check")
    assert "the graph is valid" in checked.stdout


BAD_CONFIG = json.dumps({**GIVEN, "resources": {"cpu": 0, "memory": 512}})
BAD_INPUTS = [
    ("config_flow", ["--config", "nope", "x.json", "run"],
     "--config nope: ConfigFlow has no config named 'nope' (its configs: config)"),
    ("config_flow", ["--config", "config", "missing.json", "run"],
     "config 'config': file missing.json does not exist (looked in "),
    ("config_flow", ["--config", "config", "bad.json", "run"],
     "config 'config': bad.json is not valid JSON: Expecting "),
    ("config_flow", ["--config-value", "config", "{nope", "run"],
     "config 'config': --config-value is not valid JSON: "),
    ("config_flow", ["--config-value", "config", "[1, 2]", "run"],
     "config 'config': --config-value holds a list, not an object of keys and values"),
    ("config_flow", ["--config-value", "config", "{}", "--config", "config", "x.json", "run"],
     "config 'config' is given twice: give it once"),
    ("config_flow", ["--config-value", "config", '{"alpha": 1}', "run"],
     "the default of --layers: config.model.layers: the config has no key 'model' "
     "(its keys: alpha)"),
    ("config_flow", ["--config-value", "config", BAD_CONFIG, "run"],
     "step start: @resources: cpu and memory must be positive"),
    ("config_flow", ["--config-value", "config", json.dumps({**GIVEN, "retries": "x"}), "run"],
     "step start: @retry: times must be a whole number, got 'x'"),
    ("config_flow", ["--config-value", "config", "{}", "resume"],
     "resume reuses its origin run's configs: leave out --config and --config-value"),
    ("config_file_flow", ["run"],
     "config 'limits' is required: give --config limits PATH or --config-value limits JSON"),
    ("config_file_flow", ["--config", "limits", "bad_limits.txt", "run"],
     "config 'limits': its parser config_parsers.key_values failed on bad_limits.txt: "
     "ValueError: line 2 has no '='"),
    ("config_file_flow", ["--config", "limits", "limits.txt", "--config", "settings",
                          "bad_project.json", "run"],
     "ConfigFileFlow's @project: @project name 'Not-Valid' is not valid"),
]  # fmt: skip


@embedded_only
@pytest.mark.parametrize(("flow", "args", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_of_error_and_runs_nothing(
    flow_env: FlowEnv, flow: str, args: list[str], message: str
) -> None:
    _write_files(flow_env.home)
    result = flow_env.run(flow, NO_LINT, *args, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Error: " + message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == "" and Ledgerflow().flows == []


@embedded_only
def test_a_missing_default_file_names_the_folder_it_looked_in(flow_env: FlowEnv) -> None:
    (flow_env.home / "limits.txt").write_text("memory_mb = 1\n")
    result = flow_env.run("config_file_flow", "--config", "limits", "limits.txt", "show",
                          check=False)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"Error: config 'settings': its default file settings.json does not exist (looked in "
        f"{flow_env.home}): give --config settings PATH\n"
    )


@pytest.mark.slow
@embedded_only
def test_the_runner_passes_configs(flow_env: FlowEnv) -> None:
    with Runner(FLOWS / "config_flow.py", show_output=False, cwd=flow_env.home, pylint=False,
                config_value={"config": GIVEN}) as runner:  # fmt: skip
        assert runner._top_level_args == ["--no-pylint", "--config-value", "config",
                                          json.dumps(GIVEN)]  # fmt: skip
        result = runner.run()
    assert result.status == "successful" and result.run is not None
    assert result.run.data.config.model.name == "big"


# ---- the declarations, in this process ------------------------------------------------


def test_a_config_read_in_the_class_body_waits_for_its_value() -> None:
    config = Config("config", default_value={"a": 1})
    assert repr(config.model.layers[0]) == "config.model.layers[0]"
    assert repr(config_expr("config.a + 1")) == "config_expr('config.a + 1')"
    with pytest.raises(TypeError, match="no value while the class is defined"):
        bool(config.flag)
    with pytest.raises(TypeError, match="no value while the class is defined"):
        list(config.items_)
    with pytest.raises(ValueError, match="is not a Python expression"):
        config_expr("config.")
    with pytest.raises(ValueError, match=r"default= \(a file\) or default_value=, not both"):
        Config("c", default="c.json", default_value={})
    with pytest.raises(ValueError, match=r"must be a function or a 'module\.function' name"):
        Config("c", parser="json")


def test_a_config_value_is_read_only_all_the_way_down() -> None:
    value = ConfigValue({"model": {"layers": [1, {"x": 2}]}, "items": 3})
    assert value.model.layers[1].x == 2 and value["items"] == 3
    assert value == {"model": {"layers": (1, {"x": 2})}, "items": 3}
    assert value.to_dict() == {"model": {"layers": [1, {"x": 2}]}, "items": 3}
    with pytest.raises(AttributeError, match="read-only"):
        value.model.new = 1
    with pytest.raises(TypeError, match="read-only"):
        value.model.layers[1]["x"] = 3  # type: ignore[index]
    with pytest.raises(AttributeError, match="has no key 'nope'"):
        _ = value.nope
    assert pickle.loads(pickle.dumps(value)) == value


def test_a_recorded_config_previews_in_shared_readers(tmp_path: Path) -> None:
    """The web UI loads artifacts without running code from them: a ConfigValue is
    among what it may build (from plain data only)."""
    store = ContentStore(LocalStorage(tmp_path / "data"))
    value = ConfigValue({"model": {"layers": [1, 2]}})
    saved = store.save(value)
    assert load_data_only(store, saved.key, saved.serializer) == value


def test_a_config_may_not_take_a_parameters_or_an_options_name() -> None:
    class Clash(FlowSpec):
        tags = Config("tags")

    with pytest.raises(InvalidGraph, match="config 'tags' has the name of an option"):
        flow_configs(Clash, flow_parameters(Clash))

    class Renamed(FlowSpec):
        beta = Config("alpha")

    with pytest.raises(InvalidGraph, match="is assigned to class attribute 'beta'"):
        flow_configs(Renamed, flow_parameters(Renamed))

    class Base(FlowSpec):
        alpha = Parameter("alpha", default=1)

    class Child(Base):
        alpha = Config("alpha")  # type: ignore[assignment]

    with pytest.raises(InvalidGraph, match="config 'alpha' has the name of a parameter"):
        flow_configs(Child, flow_parameters(Child))


@pytest.mark.parametrize(
    "use",
    [
        lambda c: f"m-{c.x}",
        lambda c: c.x == 3,
        lambda c: c.x + 1,
        lambda c: int(c.x),
        lambda c: c.x < 2,
        lambda c: str(c.x),
    ],
)
def test_a_config_used_in_the_class_body_says_it_has_no_value_yet(use: Any) -> None:
    """Only decorator arguments, Parameter defaults and constants wait for the value:
    anything else in the class body would compute with a placeholder."""
    with pytest.raises(TypeError, match=r"c\.x has no value while the class is defined"):

        class Uses(FlowSpec):
            c = Config("c", default_value={"x": 1})
            value = use(c)
