"""The only code that changes user-visible state or emits events (`check_*` validates and checks
access, `do_*` writes and emits). Events are released only after the transaction commits."""
