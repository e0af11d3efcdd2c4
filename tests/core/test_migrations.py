"""Migration files: every revision id fits PostgreSQL's `alembic_version.version_num`
(varchar(32)) — SQLite does not enforce the length, so a longer id passes there and breaks
every PostgreSQL upgrade — and the revisions form branches from 0001 with no dangling parent."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from tidings.storage.db import alembic_config


def test_revision_ids_fit_alembic_version_on_postgresql() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///:memory:"))
    revisions = list(scripts.walk_revisions())
    assert len(revisions) >= 10
    too_long = [r.revision for r in revisions if len(r.revision) > 32]
    assert too_long == []
    ids = {r.revision for r in revisions}
    for r in revisions:
        parents = r.down_revision if isinstance(r.down_revision, tuple) else (r.down_revision,)
        assert all(p is None or p in ids for p in parents), r.revision
