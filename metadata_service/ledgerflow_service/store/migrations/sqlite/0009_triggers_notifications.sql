-- What starts a deployment besides its schedule (read_models/deployments.py): its
-- @trigger_on_finish upstreams and @trigger events, as " finish:NAME event:NAME ", so
-- that the process manager finds the deployments an upstream success or a published
-- event starts.
ALTER TABLE deployments ADD COLUMN listens_to TEXT NOT NULL DEFAULT '';

-- The notifications of finished runs (read_models/notifications.py, @notify): each
-- one's state ("pending", "sending", "sent", "failed"), its attempts, when it is tried
-- next and until when a replica's claim on it holds. Derived from events only.
CREATE TABLE notifications (
    run_pathspec      TEXT NOT NULL,
    notification      INTEGER NOT NULL,
    deployment        TEXT NOT NULL,
    outcome           TEXT NOT NULL,
    -- The Notify message, serialized.
    spec              BLOB NOT NULL,
    state             TEXT NOT NULL,
    attempts          INTEGER NOT NULL,
    next_try_us       INTEGER,
    claimed_until_us  INTEGER,
    detail            TEXT NOT NULL,
    requested_at_us   INTEGER NOT NULL,
    PRIMARY KEY (run_pathspec, notification)
);
CREATE INDEX notifications_due ON notifications (state, next_try_us);
