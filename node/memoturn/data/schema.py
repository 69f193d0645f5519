"""The reserved schema every database carries, created idempotently when it is opened.

All reserved objects are named ``__memoturn_*``; user SQL can never reach them (see
:mod:`memoturn.sql.guard`). Statements are ``IF NOT EXISTS`` so that running them on an
up-to-date database writes nothing and so creates no txid.
"""

RESERVED_PREFIX = "__memoturn"

BOOTSTRAP = [
    "CREATE TABLE IF NOT EXISTS __memoturn_meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS __memoturn_kv("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL, updated_at REAL NOT NULL"
    ") WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS __memoturn_kv_expiry ON __memoturn_kv(expires_at) WHERE expires_at IS NOT NULL",
]
