"""The sandbox's one list of simulators: one line per channel kind. Each line is the
`SANDBOX` entry of that provider's simulator module (`kit.SandboxEntry`: where it is mounted
under `/sandbox`, how it is built, its phone-page binding and the demo workspace's channels on
it). Adding a channel to the sandbox is adding its line here (docs/adding-a-channel.md). The
order is the order of `tidings bootstrap --demo`'s channels."""

from __future__ import annotations

from tidings.simulators import (
    api_client,
    gbm,
    line,
    rbm,
    smpp,
    telegram,
    twilio,
    viber,
    vonage,
    wechat,
    whatsapp,
)
from tidings.simulators.kit import SandboxEntry
from tidings.simulators.meta import instagram, messenger

SANDBOX: tuple[SandboxEntry, ...] = (
    whatsapp.SANDBOX,
    api_client.SANDBOX,
    twilio.SANDBOX,
    messenger.SANDBOX,
    instagram.SANDBOX,
    wechat.SANDBOX,
    telegram.SANDBOX,
    line.SANDBOX,
    viber.SANDBOX,
    rbm.SANDBOX,
    vonage.SANDBOX,
    smpp.SANDBOX,
    gbm.SANDBOX,
)
