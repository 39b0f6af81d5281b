"""`python -m ledgerflow.cli` runs the ledgerflow command line."""

from ledgerflow.cli.main import run

run()
