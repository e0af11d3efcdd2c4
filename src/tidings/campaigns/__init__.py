"""Broadcasts, designed like a mail server.

- `audience`: who a campaign goes to, snapshotted into `CampaignRecipient` rows at launch
  (labels, attribute filters, explicit contacts, CSV uploads with every bad row kept and
  reported).
- `plan`: for one recipient, which channel, address and content, through the same
  outbound gate (`actions/gate.py`) every other send passes.
- `fanout`: many small batches claimed from the recipient table; each batch writes its
  messages, deliveries and recipient states in one transaction, so a crash rolls a batch back
  whole and a restart carries on without sending anyone a second message.
- `throttle`: the per-campaign cap, both when queueing and (through the delivery worker's hook)
  when sending, on `rt.rate_limiter` so that several processes share one budget.
- `state`: campaign and recipient states, recipients following their message's status;
  `report`: counts, rates, CSV export.
"""
