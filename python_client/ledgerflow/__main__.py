"""`python -m ledgerflow` runs the ledgerflow command line."""

from ledgerflow.cli.main import run

run()
