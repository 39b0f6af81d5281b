"""The Ledgerflow executor: pulls the tasks of remote runs from the metadata service
and runs each with the resources its step asks for (see docs/executor.md)."""
