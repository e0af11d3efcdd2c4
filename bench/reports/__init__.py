"""Reports benchmark: `python -m bench.reports --url ...` (see run.py)."""
