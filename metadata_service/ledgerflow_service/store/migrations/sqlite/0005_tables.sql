-- Tables with lineage (read_models/lineage.py): each version of a table, numbered by
-- the ledger in the order its TableVersionWritten event arrived, and each read of one.
CREATE TABLE table_versions (
    namespace       TEXT NOT NULL,
    table_name      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    location        TEXT NOT NULL,
    -- The version's files (relative to location), as a JSON list.
    files_json      TEXT NOT NULL,
    num_rows        INTEGER NOT NULL,
    num_bytes       INTEGER NOT NULL,
    schema_text     TEXT NOT NULL,
    task_pathspec   TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    run_pathspec    TEXT NOT NULL,
    written_at_us   INTEGER NOT NULL,
    PRIMARY KEY (namespace, table_name, version)
);

CREATE TABLE table_reads (
    namespace       TEXT NOT NULL,
    table_name      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    task_pathspec   TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    run_pathspec    TEXT NOT NULL,
    read_at_us      INTEGER NOT NULL,
    PRIMARY KEY (namespace, table_name, version, task_pathspec, attempt)
);
