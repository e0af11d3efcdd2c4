"""A distinct type per id space, so a provider id cannot pass for one of ours."""

from typing import NewType

WorkspaceId = NewType("WorkspaceId", int)
AgentId = NewType("AgentId", int)
InboxId = NewType("InboxId", int)
ChannelId = NewType("ChannelId", int)
ContactId = NewType("ContactId", int)
ConversationId = NewType("ConversationId", int)
MessageId = NewType("MessageId", int)
DeliveryId = NewType("DeliveryId", int)
InboundEventId = NewType("InboundEventId", int)

# Ids that belong to providers, never to us.
ProviderMessageId = NewType("ProviderMessageId", str)
ProviderAddress = NewType("ProviderAddress", str)
