-- Cards (read_models/cards.py): the HTML reports a task attempt rendered (@card), each
-- stored in the datastore under content_key; error says why one failed to render.
CREATE TABLE cards (
    task_pathspec   TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    card_type       TEXT NOT NULL,
    -- '' for a card without an id.
    card_id         TEXT NOT NULL,
    -- Its place among the cards of its event (the order the step declared them).
    position        INTEGER NOT NULL,
    run_pathspec    TEXT NOT NULL,
    content_key     TEXT NOT NULL,
    size            BIGINT NOT NULL,
    error           TEXT NOT NULL,
    recorded_at_us  BIGINT NOT NULL,
    PRIMARY KEY (task_pathspec, attempt, card_type, card_id)
);
