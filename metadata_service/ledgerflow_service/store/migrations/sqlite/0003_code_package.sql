-- The datastore key of a run's code package ('' when it recorded none).
ALTER TABLE runs ADD COLUMN code_package_key TEXT NOT NULL DEFAULT '';
