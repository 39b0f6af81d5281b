-- 1 for a run the service orchestrates (`run --remote`, a deployment's): its status is
-- never "lost" for want of heartbeats, since a run waiting in the queue (or through a
-- service outage) has nobody to send them; its leases say whether its tasks live.
ALTER TABLE runs ADD COLUMN orchestrated INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET orchestrated = 1
WHERE pathspec IN (SELECT run_pathspec FROM orchestrated_runs);
