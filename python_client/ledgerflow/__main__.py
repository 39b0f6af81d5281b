"""`python -m ledgerflow` runs the ledgerflow command line."""

from ledgerflow.cli import main

main()
