"""The service as orchestrator of submitted runs: the process manager (what follows an
event, decided by the run rules of ``ledgerflow.engine``) and the lease desk (who runs
what)."""
