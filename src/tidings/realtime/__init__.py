"""Live events: an in-process bus by default, Redis streams when TIDINGS_REDIS_URL is set."""
