"""`tune_gc`, which `tidings serve` and `tidings worker` call at start: fewer, larger
collections and start-up objects frozen. Checked in a child process (freezing the test
process's objects would keep them for the whole session)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_tune_gc_raises_the_threshold_and_freezes_start_up_objects() -> None:
    code = (
        "import gc, json\n"
        "before = gc.get_threshold()\n"
        "from tidings.runtime import GC_THRESHOLD, tune_gc\n"
        "tune_gc()\n"
        "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count(), GC_THRESHOLD]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    before, after, frozen, threshold = json.loads(out)
    assert before[0] < threshold
    assert after == [threshold, 20, 20]
    assert frozen > 10_000  # tidings, SQLAlchemy, FastAPI... imported before the freeze
