"""HTTP surface: provider webhooks, REST API v1, live event stream."""
