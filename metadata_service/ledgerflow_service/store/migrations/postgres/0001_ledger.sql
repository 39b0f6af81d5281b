-- The ledger: one append-only table of events.
CREATE TABLE events (
    global_position     BIGINT  PRIMARY KEY,  -- assigned under the append lock: gapless, commit-ordered
    event_id            TEXT    NOT NULL UNIQUE,
    stream              TEXT    NOT NULL,
    stream_version      BIGINT  NOT NULL,
    run_pathspec        TEXT    NOT NULL,
    event_type          TEXT    NOT NULL,
    payload             BYTEA   NOT NULL,
    actor               TEXT    NOT NULL,
    actor_authenticated INTEGER NOT NULL,
    recorded_at_us      BIGINT  NOT NULL,
    UNIQUE (stream, stream_version)
);
CREATE INDEX events_by_run ON events (run_pathspec, global_position);
CREATE INDEX events_by_actor ON events (actor, global_position);
CREATE INDEX events_by_time ON events (recorded_at_us);

-- History cannot be rewritten by any code path: the database refuses it.
CREATE FUNCTION ledgerflow_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledgerflow events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION ledgerflow_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION ledgerflow_events_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON events FROM PUBLIC;
