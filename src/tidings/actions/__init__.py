"""The code that changes user-visible state (`check_*` validates and checks access, `do_*` writes
and emits), and the unit of work every live event goes through (`base.transaction`; the ingest
set path and the campaign fan-out write and emit in it too). Events are released only after
the transaction commits."""
