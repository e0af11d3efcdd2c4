"""Campaign send-rate benchmark: `python -m bench.campaigns` (see __main__)."""
