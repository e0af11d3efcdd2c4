"""Pure domain types: ids, enums, canonical events, errors. No I/O, no framework."""
