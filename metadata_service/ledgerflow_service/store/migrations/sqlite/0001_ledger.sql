-- The ledger: one append-only table of events.
CREATE TABLE events (
    global_position     INTEGER PRIMARY KEY,  -- assigned under the append lock: gapless, commit-ordered
    event_id            TEXT    NOT NULL UNIQUE,
    stream              TEXT    NOT NULL,
    stream_version      INTEGER NOT NULL,
    run_pathspec        TEXT    NOT NULL,
    event_type          TEXT    NOT NULL,
    payload             BLOB    NOT NULL,
    actor               TEXT    NOT NULL,
    actor_authenticated INTEGER NOT NULL,
    recorded_at_us      INTEGER NOT NULL,
    UNIQUE (stream, stream_version)
);
CREATE INDEX events_by_run ON events (run_pathspec, global_position);
CREATE INDEX events_by_actor ON events (actor, global_position);
CREATE INDEX events_by_time ON events (recorded_at_us);

-- History cannot be rewritten by any code path: the database refuses it.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'ledgerflow events are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'ledgerflow events are append-only: DELETE is not allowed'); END;
