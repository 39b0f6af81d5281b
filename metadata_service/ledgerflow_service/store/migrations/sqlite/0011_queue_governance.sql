-- Queue governance (docs/executor.md, "Queues"): each orchestrated run's queue policy
-- (RunStarted.queue_policy: priority, --max-workers, --queue-timeout), how many of its
-- tasks are leased or running (the cap and fair share between users count them), and
-- when it last went below its cap (its queued tasks' deadline starts again then).
-- Runs recorded before this had no policy: zeros, as a rebuild folds them.
ALTER TABLE orchestrated_runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orchestrated_runs ADD COLUMN max_workers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orchestrated_runs ADD COLUMN queue_timeout_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orchestrated_runs ADD COLUMN active_tasks BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orchestrated_runs ADD COLUMN room_since_us BIGINT NOT NULL DEFAULT 0;
UPDATE orchestrated_runs SET active_tasks = (
    SELECT COUNT(*) FROM queue
    WHERE queue.run_pathspec = orchestrated_runs.run_pathspec
    AND queue.state IN ('leased', 'running')
);
-- A lease call reads the runs with open tasks, then each one's oldest queued tasks.
CREATE INDEX orchestrated_open ON orchestrated_runs (open_tasks);
CREATE INDEX queue_run_waiting ON queue (run_pathspec, state, queued_position);
