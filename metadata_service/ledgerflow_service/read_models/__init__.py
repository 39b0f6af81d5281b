"""The read models: what the events say, kept as rows for queries -- flows and runs,
steps, tasks and attempts, artifacts, run tags -- each module holding one aggregate's
rows and rules, and ``fold`` applying a batch of events to them. They are rebuilt
from the events alone (``rebuild-projections``), so a rebuild must equal the live rows.
"""

from ledgerflow_service.read_models.fold import READ_MODEL_TABLES, ReadModels

__all__ = ["READ_MODEL_TABLES", "ReadModels"]
