"""ledgerflow.Deployer against a real service and executor: a flow deployed from Python,
triggered with a parameter, run on the executor, found among its deployment's runs,
paused (a trigger is then refused clearly) and deleted. The deploy command itself is
tested in test_deployments.py; here, what the Python API adds on top of it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from conftest import FLOWS, Cluster
from ledgerflow import Deployer, default_metadata, get_metadata
from ledgerflow.deployer import DeploymentPaused, DeployNotCreated

pytestmark = pytest.mark.slow

FLOW = FLOWS / "deployer_flow.py"


@pytest.fixture
def served(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """The cluster's settings in this process (its datastore, its user), with the service
    named only to the Deployer (its `env`): the client API must follow the deploy there.
    The client API's choice of ledger is put back afterwards, for the tests after this."""
    for name in [n for n in os.environ if n.startswith("LEDGERFLOW_")]:
        monkeypatch.delenv(name)
    for name, value in cluster.env.items():
        monkeypatch.setenv(name, value)
    try:
        yield cluster
    finally:
        default_metadata()


def test_deploy_trigger_run_pause_and_delete(served: Cluster) -> None:
    served.executor()
    deployer = Deployer(
        FLOW, show_output=False, env={"LEDGERFLOW_SERVICE": served.address}, cwd=served.home
    )
    deployed = deployer.deploy(greeting="hi", tags=["nightly"])
    assert deployed.name == "DeployerFlow"
    record = deployed.deployment
    assert get_metadata() == f"service@{served.address}"  # switched to where it went
    assert (record.version, record.flow_name, record.paused) == (1, "DeployerFlow", False)
    assert record.parameters["greeting"] == '"hi"' and list(record.tags) == ["nightly"]

    # Python values become JSON for the service: a string stays one, a number one.
    triggered = deployed.trigger(greeting="007", count=3)
    assert triggered.run.id == triggered.run_id
    run = triggered.wait_for_run(timeout=180)
    assert run.successful, served.log_text()
    assert triggered.status == "succeeded"
    assert run["start"].task.data.said == "007 x3"
    assert run["start"].task.data.kind == "manual"
    assert run["start"].task.data.deployment == "DeployerFlow"
    assert "nightly" in run.tags
    # Found in any namespace: the run is production's, not this user's.
    assert [r.id for r in deployed.runs()] == [triggered.run_id]

    with pytest.raises(ValueError, match=r"has no parameter 'colour'.*greeting, count"):
        deployed.trigger(colour="red")

    deployed.pause(reason="testing")
    assert deployed.deployment.paused
    with pytest.raises(DeploymentPaused, match=r"is paused.*\.resume\(\)"):
        deployed.trigger()
    assert [r.id for r in deployed.runs()] == [triggered.run_id]  # nothing was started
    assert not deployed.resume().paused

    # Deploying again from Python makes the next version of the same name.
    assert deployer.deploy().deployment.version == 2
    assert deployed.delete().deleted
    assert deployed.deployment.deleted


def test_options_map_to_the_command_line_and_failures_are_clear(served: Cluster) -> None:
    deployer = Deployer(FLOW, show_output=False, pylint=False)
    command = deployer._deploy_command({"branch": "x", "tags": ["a", "b"], "count": 2})
    at = command.index("deploy")
    assert command[2:at] == ["--no-pylint", "--branch", "x"]  # top-level, before deploy
    assert command[at + 1 :] == ["--tag", "a", "--tag", "b", "--count", "2"]
    assert "--production" in deployer._deploy_command({"production": True})[:at]

    with pytest.raises(ValueError, match=r"has no parameter 'colour'.*deploy also takes"):
        deployer.deploy(colour="red")
    with pytest.raises(ValueError, match="deployment_file is the Deployer's own"):
        deployer.deploy(deployment_file="x")
    with pytest.raises(ValueError, match=r"Deployer takes no option 'alpha'.*go to deploy"):
        Deployer(FLOW, alpha=1)

    # No service in the environment: deploy refuses, and says why.
    with pytest.raises(DeployNotCreated, match="deploy needs the metadata service"):
        deployer.deploy()
    # The branch reaches the command: this flow has no @project to have branches.
    with_service = Deployer(FLOW, show_output=False, env={"LEDGERFLOW_SERVICE": served.address})
    with pytest.raises(DeployNotCreated, match="--branch needs @project"):
        with_service.deploy(branch="x")
