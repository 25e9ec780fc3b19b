"""Local stand-ins for the external services, speaking the protocols of docs/adapters.md.

Each runs on 127.0.0.1 in a background thread for tests, or alone for demos
(`python -m tools.sandbox.tax_service --port 8701`). They import nothing from `apps`.
The names below are imported lazily, so `python -m tools.sandbox.<service>` runs cleanly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Fault": "base",
    "FaultPlan": "base",
    "JsonSandbox": "base",
    "ReceivedRequest": "base",
    "IdentitySandbox": "identity_service",
    "SMSSandbox": "sms_gateway",
    "SentMessage": "sms_gateway",
    "TaxSandbox": "tax_service",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
