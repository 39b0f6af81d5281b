"""Command lines: a flow file's (``python flow.py run|resume|...``, :mod:`.flow`) and the
``ledgerflow`` command (:mod:`.main`, which composes the ledger's commands, the UI's,
the service's and the executor's). Empty on purpose: a flow file imports only the flow
command line, not the service's or the executor's."""
