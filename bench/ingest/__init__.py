"""`python -m bench.ingest.run`: webhook ingest throughput against a bare Starlette baseline."""
