"""Draw services. The instant draw runs when an invoice enters a campaign (pipeline step 9).

No instant prize pools exist yet, so an entry draws nothing; the result is `None` and the
submission response says no prize.
"""

from __future__ import annotations


def instant_draw_for_entry(*, invoice) -> dict | None:
    """Draw once for a new entry from its campaign's instant pools. None: no prize."""
    return None
