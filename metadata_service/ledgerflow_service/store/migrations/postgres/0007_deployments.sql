-- Deployments (read_models/deployments.py): each deployment's latest version, whether
-- it is paused or deleted, and the next due time its schedule fires (orchestration/
-- schedules.py asks for the due ones). Derived from events only, like the others.
CREATE TABLE deployments (
    name            TEXT PRIMARY KEY,
    flow_name       TEXT NOT NULL,
    version         BIGINT NOT NULL,
    project         TEXT NOT NULL,
    branch          TEXT NOT NULL,
    paused          INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    deployed_by     TEXT NOT NULL,
    deployed_at_us  BIGINT NOT NULL,
    -- The DeploymentCreated message of the latest version, serialized.
    spec            BYTEA NOT NULL,
    -- The next due time of its schedule (NULL: unscheduled, paused or deleted).
    next_due_us     BIGINT
);
CREATE INDEX deployments_due ON deployments (next_due_us);
CREATE INDEX deployments_by_flow ON deployments (flow_name, name);

-- What started a run of a deployment: its Trigger message, serialized (empty for runs
-- started with `run`).
ALTER TABLE runs ADD COLUMN trigger_message BYTEA NOT NULL DEFAULT ''::bytea;
