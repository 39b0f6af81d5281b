"""Ledgerflow: write a workflow as a Python class, run it, and find every run again."""
