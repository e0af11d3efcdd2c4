"""Full-text search over message bodies, trigram contact search, and inbox-list indexes.

PostgreSQL: a GIN index on to_tsvector('simple', body) (the 'simple' configuration: no
stemming, so it works the same for every language customers write in). SQLite: an FTS5 table
kept in step with `message` by triggers (external content, so the text is stored once).

Revision ID: 0005_search
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_search"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The inbox list filtered by assignee ("Mine") or by inbox (an agent's view), newest first:
    # each filter needs its own (filter, last_activity_at) index to stay a short index scan.
    op.create_index(
        "ix_conversation_assignee_activity",
        "conversation",
        ["workspace_id", "assignee_id", "last_activity_at", "id"],
    )
    op.create_index(
        "ix_conversation_inbox_activity", "conversation", ["inbox_id", "last_activity_at", "id"]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_message_body_fts ON message "
            "USING gin (to_tsvector('simple', coalesce(body, '')))"
        )
        # Contact search is a substring match (names, emails, numbers, addresses): trigram
        # indexes serve ILIKE '%term%'. pg_trgm is a trusted extension (PostgreSQL 13+), so a
        # database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for table, column in (
            ("contact", "name"),
            ("contact", "email"),
            ("contact", "phone_e164"),
            ("contact_identity", "address"),
        ):
            op.execute(
                f"CREATE INDEX ix_{table}_{column}_trgm ON {table} USING gin ({column} gin_trgm_ops)"
            )
        return
    op.execute(
        "CREATE VIRTUAL TABLE message_fts USING fts5("
        "body, content='message', content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
    )
    op.execute(
        "CREATE TRIGGER message_fts_insert AFTER INSERT ON message BEGIN "
        "INSERT INTO message_fts(rowid, body) VALUES (new.id, coalesce(new.body, '')); END"
    )
    op.execute(
        "CREATE TRIGGER message_fts_delete AFTER DELETE ON message BEGIN "
        "INSERT INTO message_fts(message_fts, rowid, body) "
        "VALUES ('delete', old.id, coalesce(old.body, '')); END"
    )
    op.execute(
        "CREATE TRIGGER message_fts_update AFTER UPDATE OF body ON message BEGIN "
        "INSERT INTO message_fts(message_fts, rowid, body) "
        "VALUES ('delete', old.id, coalesce(old.body, '')); "
        "INSERT INTO message_fts(rowid, body) VALUES (new.id, coalesce(new.body, '')); END"
    )
    op.execute("INSERT INTO message_fts(message_fts) VALUES ('rebuild')")


def downgrade() -> None:
    op.drop_index("ix_conversation_inbox_activity", "conversation")
    op.drop_index("ix_conversation_assignee_activity", "conversation")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_message_body_fts")
        for name in (
            "contact_name",
            "contact_email",
            "contact_phone_e164",
            "contact_identity_address",
        ):
            op.execute(f"DROP INDEX IF EXISTS ix_{name}_trgm")
        return
    for trigger in ("message_fts_insert", "message_fts_delete", "message_fts_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS message_fts")
