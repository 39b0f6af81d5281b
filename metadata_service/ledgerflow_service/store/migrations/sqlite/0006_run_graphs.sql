-- Each run's graph as it started (read_models/runs.py): declared by a local run, or
-- submitted with `run --remote` (those also live in orchestrated_runs). Readers such as
-- the web UI draw a run's steps from it, the ones not reached yet included.
CREATE TABLE run_graphs (
    run_pathspec    TEXT PRIMARY KEY,
    -- The FlowGraph message, serialized.
    graph           BLOB NOT NULL
);

INSERT INTO run_graphs (run_pathspec, graph)
SELECT run_pathspec, graph FROM orchestrated_runs;
