"""The WhatsApp Cloud API simulator (sandbox `/sandbox/whatsapp`): the Graph endpoints and
webhooks in `simulator`, message templates in `templates`, media in `media`; what it shares
with Messenger and Instagram is in `simulators/meta/`."""

from tidings.simulators.whatsapp.simulator import (
    DEMO_WABA,
    SANDBOX,
    AccountIn,
    FailIn,
    InboundSpec,
    Knobs,
    WhatsAppBinding,
    WhatsAppSimulator,
    graph_error_body,
)

__all__ = [
    "DEMO_WABA",
    "SANDBOX",
    "AccountIn",
    "FailIn",
    "InboundSpec",
    "Knobs",
    "WhatsAppBinding",
    "WhatsAppSimulator",
    "graph_error_body",
]
