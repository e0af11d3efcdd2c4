"""The agent UI (server-rendered pages that talk to the REST API and the live stream)."""
