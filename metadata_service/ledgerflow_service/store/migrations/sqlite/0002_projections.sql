-- Read models. Derived from events only; `ledgerflow service rebuild-projections`
-- empties and refills them.
CREATE TABLE flows (
    flow_name       TEXT PRIMARY KEY,
    created_at_us   INTEGER NOT NULL,
    created_by      TEXT NOT NULL
);

CREATE TABLE runs (
    pathspec            TEXT PRIMARY KEY,
    flow_name           TEXT NOT NULL,
    run_id              TEXT NOT NULL,
    started_position    INTEGER NOT NULL,
    user_name           TEXT NOT NULL,
    parameters_json     TEXT NOT NULL,
    origin_run_id       TEXT NOT NULL,
    created_at_us       INTEGER NOT NULL,
    finished_at_us      INTEGER,
    -- 1 once a task of the end step succeeded: the run's success is derived from it.
    end_succeeded       INTEGER NOT NULL,
    last_heartbeat_at_us INTEGER NOT NULL
);
CREATE INDEX runs_by_flow ON runs (flow_name, started_position DESC);
CREATE INDEX runs_by_position ON runs (started_position DESC);

CREATE TABLE run_tags (
    run_pathspec    TEXT NOT NULL,
    tag             TEXT NOT NULL,
    is_system       INTEGER NOT NULL,
    PRIMARY KEY (run_pathspec, tag)
);
CREATE INDEX run_tags_by_tag ON run_tags (tag, run_pathspec);

CREATE TABLE steps (
    pathspec        TEXT PRIMARY KEY,
    run_pathspec    TEXT NOT NULL,
    step_name       TEXT NOT NULL,
    created_at_us   INTEGER NOT NULL,
    first_position  INTEGER NOT NULL,
    task_count      INTEGER NOT NULL
);
CREATE INDEX steps_by_run ON steps (run_pathspec, first_position);

CREATE TABLE tasks (
    pathspec            TEXT PRIMARY KEY,
    run_pathspec        TEXT NOT NULL,
    step_name           TEXT NOT NULL,
    task_id             TEXT NOT NULL,
    first_position      INTEGER NOT NULL,
    created_at_us       INTEGER NOT NULL,
    finished_at_us      INTEGER,
    succeeded           INTEGER,
    current_attempt     INTEGER NOT NULL,
    last_heartbeat_at_us INTEGER NOT NULL,
    input_pathspecs_json TEXT NOT NULL,
    foreach_stack_json  TEXT NOT NULL,
    resources_json      TEXT NOT NULL,
    origin_pathspec     TEXT NOT NULL
);
CREATE INDEX tasks_by_run_step ON tasks (run_pathspec, step_name, first_position);

CREATE TABLE attempts (
    task_pathspec   TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    started_at_us   INTEGER NOT NULL,
    finished_at_us  INTEGER,
    succeeded       INTEGER,
    error_type      TEXT NOT NULL,
    error_message   TEXT NOT NULL,
    traceback       TEXT NOT NULL,
    stdout_key      TEXT NOT NULL,
    stderr_key      TEXT NOT NULL,
    PRIMARY KEY (task_pathspec, attempt)
);

CREATE TABLE artifacts (
    task_pathspec   TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    name            TEXT NOT NULL,
    run_pathspec    TEXT NOT NULL,
    step_name       TEXT NOT NULL,
    content_key     TEXT NOT NULL,
    size            INTEGER NOT NULL,
    type_name       TEXT NOT NULL,
    serializer      TEXT NOT NULL,
    language        TEXT NOT NULL,
    PRIMARY KEY (task_pathspec, attempt, name)
);
CREATE INDEX artifacts_by_run_step ON artifacts (run_pathspec, step_name);

-- The last event position the projections have applied (one row).
CREATE TABLE projection_position (
    name        TEXT PRIMARY KEY,
    position    INTEGER NOT NULL
);
