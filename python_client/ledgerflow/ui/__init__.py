"""``ledgerflow ui``: the web UI over the ledger (app.py), its graph drawing (dag.py),
the pages' data (model.py) and live updates from the watch stream (live.py)."""
