"""Benchmarks that print figures. Never asserted in tests; results go to docs/benchmarks.md."""
