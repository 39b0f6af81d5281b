"""Reads over the read models, answered as ``ledgerflow.v1`` records: flows and runs,
steps and tasks, artifacts, and the audit reads of the events themselves. Filters are
checked here, lists come in pages (``paging``), and status is derived at read time
(``status``)."""
