"""Local stand-ins for the external services, speaking the protocols of docs/adapters.md.

Each runs on 127.0.0.1 in a background thread for tests, or alone for demos
(`python -m tools.sandbox.tax_service --port 8701`). They import nothing from `apps`.
"""

from .base import Fault, FaultPlan, JsonSandbox, ReceivedRequest
from .identity_service import IdentitySandbox
from .sms_gateway import SentMessage, SMSSandbox
from .tax_service import TaxSandbox

__all__ = [
    "Fault",
    "FaultPlan",
    "IdentitySandbox",
    "JsonSandbox",
    "ReceivedRequest",
    "SMSSandbox",
    "SentMessage",
    "TaxSandbox",
]
