from django.db import models


class BenchRow(models.Model):
    """One row per ceiling request: the smallest honest write (no migrations: run-syncdb)."""

    user = models.ForeignKey("accounts.User", on_delete=models.PROTECT)
    note = models.CharField(max_length=40)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.note} {self.amount}"
