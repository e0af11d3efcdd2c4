"""Local state is private to the account Tidings runs as: directories it
creates are 0700, files 0600 — the data dir, the SQLite database and its WAL/SHM files, the
generated secret key, attachment files. SQLite gives its -wal and -shm files the database
file's permissions, so creating the database 0600 covers them; a database left readable by an
older version is tightened when opened.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as 0700 directories; existing ones are left as are
    (a data dir under a shared parent must not change the parent)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=DIR_MODE)
            os.chmod(d, DIR_MODE)  # mkdir's mode is narrowed by the umask, never widened


def open_private(path: Path) -> int:
    """A new file opened for writing with mode 0600 from its first byte (no chmod window)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)


def tighten(path: Path) -> None:
    """Drop group and other permission bits from a file we own."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        st = path.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)


def private_sqlite(path: Path) -> None:
    """The database file exists and is 0600 before SQLite opens it (its journals follow)."""
    private_dir(path.parent)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(open_private(path))
    for p in (path, *(path.with_name(path.name + s) for s in _SQLITE_SIDE_FILES)):
        tighten(p)
