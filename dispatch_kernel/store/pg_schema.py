"""The PostgreSQL store's schema: migrations versioned in the database, applied under a lock.

Each migration is applied in one transaction that first takes a transaction-scoped advisory
lock, so two servers that start at once migrate once: the second waits for the first to commit,
then finds nothing left to do. Every applied version is a row of `dispatch_migrations` (who
applied it and when), which is also how a test sees that nothing was applied twice.
"""

from __future__ import annotations

import psycopg

# Taken by whoever migrates; any constant that no other application uses for the same database.
MIGRATION_LOCK = 0x64697370_61746368 & 0x7FFF_FFFF_FFFF_FFFF  # "dispatch"

MIGRATIONS: list[str] = [
    # 1: entities, runs (with a change sequence for watchers on other servers), hosts, leases
    """
    CREATE TABLE entities (
        kind TEXT NOT NULL,
        org TEXT NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        id TEXT NOT NULL UNIQUE,
        revision INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, org, name)
    );
    CREATE SEQUENCE run_changes;
    -- Run ids sort by time as bytes: compared by "C", whatever the database's locale.
    CREATE TABLE runs (
        id TEXT COLLATE "C" PRIMARY KEY,
        org TEXT NOT NULL,
        function TEXT NOT NULL,
        function_revision INTEGER NOT NULL,
        status TEXT NOT NULL,
        host TEXT NOT NULL,
        queued DOUBLE PRECISION NOT NULL,
        started DOUBLE PRECISION,
        finished DOUBLE PRECISION,
        cold_start BOOLEAN NOT NULL DEFAULT false,
        input TEXT,
        output TEXT,
        error TEXT,
        logs TEXT,
        event TEXT,
        http TEXT,
        tags TEXT,
        change BIGINT NOT NULL DEFAULT nextval('run_changes')
    );
    CREATE INDEX runs_by_org ON runs (org, id);
    CREATE INDEX runs_by_function ON runs (org, function, id);
    CREATE INDEX runs_unsettled ON runs (host) WHERE status IN ('QUEUED', 'RUNNING');
    CREATE INDEX runs_by_change ON runs (change);
    CREATE TABLE hosts (
        id TEXT PRIMARY KEY,
        started TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE source_state (
        source TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- Other servers learn of changes at once: one notification per changed entity, one per
    -- transaction that changed runs (identical notifications of a transaction are merged).
    CREATE FUNCTION dispatch_entity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        changed RECORD;
    BEGIN
        IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
        PERFORM pg_notify('dispatch_entities', changed.kind || ' ' || changed.org || ' ' || changed.name);
        RETURN NULL;
    END $$;
    CREATE TRIGGER entities_changed AFTER INSERT OR UPDATE OR DELETE ON entities
        FOR EACH ROW EXECUTE FUNCTION dispatch_entity_changed();
    CREATE FUNCTION dispatch_runs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('dispatch_runs', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER runs_changed AFTER INSERT OR UPDATE ON runs
        FOR EACH STATEMENT EXECUTE FUNCTION dispatch_runs_changed();
    """,
    # 2: which of a function's drivers ran the run (a function may have several)
    """
    ALTER TABLE runs ADD COLUMN driver TEXT;
    """,
    # 3: keys unique across servers (an API's routes), each held by one owner
    """
    CREATE TABLE claims (
        scope TEXT NOT NULL,
        org TEXT NOT NULL,
        key TEXT NOT NULL,
        owner TEXT NOT NULL,
        claimed TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (scope, org, key)
    );
    CREATE INDEX claims_by_owner ON claims (scope, org, owner);
    """,
]


def migrate(conn: psycopg.Connection, applied_by: str) -> list[int]:
    """Bring the database to the latest schema; returns the versions this call applied."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS dispatch_migrations ("
            " version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now(),"
            " applied_by TEXT NOT NULL)"
        )
        row = conn.execute("SELECT coalesce(max(version), 0) FROM dispatch_migrations").fetchone()
        current = row[0] if row else 0
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"the database's schema is version {current}, newer than this dispatch-kernel "
                f"knows ({len(MIGRATIONS)}): upgrade dispatch-kernel on this server"
            )
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            conn.execute(script)
            conn.execute("INSERT INTO dispatch_migrations (version, applied_by) VALUES (%s, %s)",
                         (number, applied_by))
            applied.append(number)
    return applied


def schema_version(conn: psycopg.Connection) -> int:
    """How many migrations the database has had."""
    row = conn.execute("SELECT coalesce(max(version), 0) FROM dispatch_migrations").fetchone()
    return row[0] if row else 0


__all__ = ["MIGRATIONS", "MIGRATION_LOCK", "migrate", "schema_version"]
