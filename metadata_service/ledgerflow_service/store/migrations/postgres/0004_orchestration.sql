-- Orchestration read models (see orchestration/): the runs the service orchestrates,
-- and their tasks from queued to done. Derived from events only, like the others.
CREATE TABLE orchestrated_runs (
    run_pathspec    TEXT PRIMARY KEY,
    -- The run's FlowGraph message, serialized.
    graph           BYTEA NOT NULL,
    -- Its ResumePlan message, serialized (empty unless resumed remotely).
    resume          BYTEA NOT NULL,
    next_task_id    BIGINT NOT NULL,
    -- Tasks queued, leased or running.
    open_tasks      BIGINT NOT NULL,
    -- 'running', 'failing' (a task failed for good) or 'cancelling'.
    state           TEXT NOT NULL,
    reason          TEXT NOT NULL
);

CREATE TABLE queue (
    task_pathspec       TEXT PRIMARY KEY,
    run_pathspec        TEXT NOT NULL,
    step_name           TEXT NOT NULL,
    task_id             TEXT NOT NULL,
    attempt             INTEGER NOT NULL,
    -- 'queued', 'leased', 'running', 'done' (succeeded), 'failed' (for good),
    -- 'cancelled', or 'lost' (its lease expired; queued again at once).
    state               TEXT NOT NULL,
    queue_name          TEXT NOT NULL,
    cpu                 DOUBLE PRECISION NOT NULL,
    gpu                 INTEGER NOT NULL,
    memory_mb           BIGINT NOT NULL,
    input_pathspecs_json TEXT NOT NULL,
    foreach_stack_json  TEXT NOT NULL,
    -- Which join this task feeds and with which foreach frames ('' : none).
    join_key            TEXT NOT NULL,
    queued_position     BIGINT NOT NULL,
    queued_at_us        BIGINT NOT NULL,
    not_before_us       BIGINT NOT NULL,
    lease_id            TEXT NOT NULL,
    executor_id         TEXT NOT NULL,
    lease_seconds       INTEGER NOT NULL,
    lease_expires_at_us BIGINT NOT NULL,
    -- Attempts that failed, and leases lost, so far.
    failures            INTEGER NOT NULL,
    lost                INTEGER NOT NULL
);
CREATE INDEX queue_waiting ON queue (state, queue_name, queued_position);
CREATE INDEX queue_by_run ON queue (run_pathspec, join_key);
