"""Django's PostgreSQL backend with one change to how small batches are inserted (compiler.py).

Selected by the settings when `DATABASE_URL` names PostgreSQL; everything else is Django's.
"""

from django.db.backends.postgresql import base, operations


class DatabaseOperations(operations.DatabaseOperations):
    compiler_module = "lotteryinvoice.db.postgresql.compiler"


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
