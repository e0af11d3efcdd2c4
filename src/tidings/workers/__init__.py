"""The worker loops.

`registry.py`: which loops a process runs (`TIDINGS_WORKERS`) and starting them; `loop.py`:
the one polling loop the batch workers share; `assignment.py` and `profiles.py`: loops that
belong to no feature package. The other loops live with their feature (`ingest/worker.py`,
`delivery/worker.py`, `media/worker.py`, ...).
"""
