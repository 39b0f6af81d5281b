"""The local runtime and what every run shares with it: the scheduler (the one writer of a
local run's events), launchers and the task entry point, run events, resume planning,
code packages, and submitting a run to the service (``run --remote``). The rules the
scheduler follows are ``ledgerflow.engine``'s."""
