"""The inbound pipeline: durable group-committed storage of webhook events, then processing."""
