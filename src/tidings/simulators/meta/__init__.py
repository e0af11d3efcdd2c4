"""Meta's simulators: Messenger and Instagram (`messaging`, one simulator for both products,
with `messenger` and `instagram` its sandbox entries) and what they share with the WhatsApp
simulator (`simulators/whatsapp/`): the Graph and `/_sim/` plumbing (`base`), the signed
webhook sender with Meta's retries (`webhooks`) and its statistics (`stats`)."""
