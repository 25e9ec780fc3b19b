"""Index kinds that stay portable between PostgreSQL and the embedded SQLite default."""

from __future__ import annotations

from django.db import models


class EqualityIndex(models.Index):
    """An index that only answers `=`: a hash index on PostgreSQL, a B-tree elsewhere.

    For a column that is searched only for exact values and whose rows arrive in random key
    order (a seller's credit code in the ten-million-row registry feed), a hash index costs
    the bulk load about half as much as a B-tree: no tree to descend and no duplicate lists to
    merge on every page split (measured in docs/benchmarks.md, "Feed import … fourth session").
    PostgreSQL's hash indexes are WAL-logged and crash-safe (since version 10); they take one
    column and no uniqueness, so this class refuses anything else.
    """

    def __init__(self, *expressions, **kwargs):
        super().__init__(*expressions, **kwargs)
        if len(self.fields) != 1 or self.expressions or self.opclasses or self.include:
            raise ValueError("An EqualityIndex covers exactly one plain field.")

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "postgresql":
            using = " USING hash"
        return super().create_sql(model, schema_editor, using=using, **kwargs)
