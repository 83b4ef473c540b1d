"""Analytics from rollups: counters per campaign, step, variant, channel, sender and hour.

A row per (campaign, UTC hour, step, variant, channel, sender) with a column per metric.

``campaign_rollups`` and ``message_firsts`` (see ``libs/db/models/analytics.py``) are kept by
row triggers on ``message_events`` and ``enrollments``, so every writer (worker, inbound, ops,
a bulk load) maintains them without knowing. The triggers run as the writer (no SECURITY
DEFINER): a tenant session writes its own organization's counters under row-level security,
system work bypasses it. Deletions (a lead erased, a campaign removed) take their counts back.
The existing rows are backfilled by the same recomputation ``sdr analytics rebuild`` runs.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.db.models.analytics import COLUMNS, ENROLLED, METRICS, ROLLUP_KEY, rebuild
from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TABLES = ("campaign_rollups", "message_firsts")
KEY = ", ".join(ROLLUP_KEY)
MATCH = (
    "campaign_id = p_campaign AND hour = date_trunc('hour', p_hour, 'UTC')"
    " AND step_id IS NOT DISTINCT FROM p_step AND variant IS NOT DISTINCT FROM p_variant"
    " AND channel IS NOT DISTINCT FROM p_channel AND sender_id IS NOT DISTINCT FROM p_sender"
)
METRICS_ARRAY = "ARRAY[" + ", ".join(f"'{m}'" for m in METRICS) + "]"
ADDED = ", ".join(f"CASE WHEN p_metric = '{c}' THEN p_n ELSE 0 END" for c in COLUMNS)
SUMMED = ", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in COLUMNS)
TAKEN = ", ".join(f"{c} = {c} - CASE WHEN p_metric = '{c}' THEN 1 ELSE 0 END" for c in COLUMNS)
EMPTY = " AND ".join(f"{c} = 0" for c in COLUMNS)
EMPTY_R = " AND ".join(f"r.{c} = 0" for c in COLUMNS)
DELTAS = ", ".join(f"coalesce(sum(d.n) FILTER (WHERE d.metric = '{c}'), 0)" for c in COLUMNS)
KEY_D = ", ".join(f"d.{c}" for c in ROLLUP_KEY)

FUNCTIONS = f"""
CREATE FUNCTION rollup_sender(data jsonb) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN data->>'sender_id' ~* '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$'
                THEN CAST(data->>'sender_id' AS uuid) END
$$;

CREATE FUNCTION rollup_add(p_org uuid, p_campaign uuid, p_step uuid, p_variant varchar, p_channel varchar,
                           p_sender uuid, p_hour timestamptz, p_metric varchar, p_n bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO campaign_rollups AS r (org_id, campaign_id, hour, step_id, variant, channel, sender_id,
                                       {", ".join(COLUMNS)})
    VALUES (p_org, p_campaign, date_trunc('hour', p_hour, 'UTC'), p_step, p_variant, p_channel, p_sender, {ADDED})
    ON CONFLICT ({KEY}) DO UPDATE SET {SUMMED}
$$;

-- Taking a count back only updates (never inserts): inside a cascade the campaign may be going.
-- A row whose counters are all back at zero goes: a campaign's rows are exactly its non-empty hours.
CREATE FUNCTION rollup_sub(p_campaign uuid, p_step uuid, p_variant varchar, p_channel varchar,
                           p_sender uuid, p_hour timestamptz, p_metric varchar) RETURNS void
LANGUAGE sql AS $$
    UPDATE campaign_rollups SET {TAKEN} WHERE {MATCH};
    DELETE FROM campaign_rollups WHERE {MATCH} AND {EMPTY};
$$;

-- Statement-level: a statement's events are taken in (message, metric, time) order, and its
-- counter changes summed per row and applied in the key's order, so concurrent statements lock
-- firsts and counters in one order each (no deadlock between single-statement writers) and a
-- bulk insert upserts each counter row once.
CREATE FUNCTION message_events_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    e record;
    f record;
    v_inserted integer;
    prev_message uuid;
    prev_type varchar;
    mo uuid[] := '{{}}';
    mc uuid[] := '{{}}';
    mh timestamptz[] := '{{}}';
    ms uuid[] := '{{}}';
    mv varchar[] := '{{}}';
    mch varchar[] := '{{}}';
    msnd uuid[] := '{{}}';
    mmet varchar[] := '{{}}';
BEGIN
    FOR e IN
        SELECT n.id, n.org_id, n.message_id, n.campaign_id, n.type, n.occurred_at, rollup_sender(n.data) AS sender_id,
               m.step_id, m.variant, m.channel
        FROM new_events n LEFT JOIN messages m ON m.id = n.message_id AND m.campaign_id = n.campaign_id
        WHERE n.message_id IS NOT NULL AND n.campaign_id IS NOT NULL AND n.type = ANY({METRICS_ARRAY})
        ORDER BY n.message_id, n.type, n.occurred_at, n.id
    LOOP
        -- Only the statement's earliest event of a (message, metric) can be its first.
        CONTINUE WHEN e.message_id = prev_message AND e.type = prev_type;
        prev_message := e.message_id;
        prev_type := e.type;
        INSERT INTO message_firsts (message_id, metric, org_id, campaign_id, event_id, occurred_at, step_id, variant,
                                    channel, sender_id)
        VALUES (e.message_id, e.type, e.org_id, e.campaign_id, e.id, e.occurred_at, e.step_id, e.variant, e.channel,
                e.sender_id)
        ON CONFLICT (message_id, metric) DO NOTHING;
        GET DIAGNOSTICS v_inserted = ROW_COUNT;
        CONTINUE WHEN v_inserted = 1;
        SELECT * INTO f FROM message_firsts WHERE message_id = e.message_id AND metric = e.type FOR UPDATE;
        CONTINUE WHEN (e.occurred_at, e.id) >= (f.occurred_at, f.event_id);
        -- A late event older than the first one known: the message's count moves to its hour.
        UPDATE message_firsts
        SET event_id = e.id, occurred_at = e.occurred_at, step_id = e.step_id, variant = e.variant,
            channel = e.channel, sender_id = e.sender_id
        WHERE message_id = e.message_id AND metric = e.type;
        mo := mo || f.org_id;
        mc := mc || f.campaign_id;
        mh := mh || date_trunc('hour', f.occurred_at, 'UTC');
        ms := ms || f.step_id;
        mv := mv || f.variant;
        mch := mch || f.channel;
        msnd := msnd || f.sender_id;
        mmet := mmet || f.metric;
    END LOOP;

    INSERT INTO campaign_rollups AS r (org_id, campaign_id, hour, step_id, variant, channel, sender_id,
                                       {", ".join(COLUMNS)})
    SELECT d.org_id, d.campaign_id, d.hour, d.step_id, d.variant, d.channel, d.sender_id, {DELTAS}
    FROM (
        SELECT mf.org_id, mf.campaign_id, date_trunc('hour', mf.occurred_at, 'UTC') AS hour, mf.step_id, mf.variant,
               mf.channel, mf.sender_id, mf.metric, 1 AS n
        FROM new_events n
        JOIN message_firsts mf ON mf.message_id = n.message_id AND mf.metric = n.type AND mf.event_id = n.id
        UNION ALL
        SELECT n.org_id, n.campaign_id, date_trunc('hour', n.occurred_at, 'UTC'), NULL, NULL, NULL,
               rollup_sender(n.data), n.type, 1
        FROM new_events n
        WHERE n.message_id IS NULL AND n.campaign_id IS NOT NULL AND n.type = ANY({METRICS_ARRAY})
        UNION ALL
        SELECT u.*, -1 FROM unnest(mo, mc, mh, ms, mv, mch, msnd, mmet) AS u
    ) d
    GROUP BY {KEY_D}, d.org_id
    ORDER BY {KEY_D}
    ON CONFLICT ({KEY}) DO UPDATE SET {SUMMED};

    IF cardinality(mc) > 0 THEN
        DELETE FROM campaign_rollups r
        USING unnest(mc, mh, ms, mv, mch, msnd) AS u(campaign_id, hour, step_id, variant, channel, sender_id)
        WHERE r.campaign_id = u.campaign_id AND r.hour = u.hour AND r.step_id IS NOT DISTINCT FROM u.step_id
          AND r.variant IS NOT DISTINCT FROM u.variant AND r.channel IS NOT DISTINCT FROM u.channel
          AND r.sender_id IS NOT DISTINCT FROM u.sender_id AND {EMPTY_R};
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION message_events_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    f record;
    nxt record;
BEGIN
    IF OLD.campaign_id IS NULL OR NOT (OLD.type = ANY({METRICS_ARRAY})) THEN
        RETURN NULL;
    END IF;
    -- The campaign itself is being deleted (this is its cascade): its counters go with it.
    IF NOT EXISTS (SELECT 1 FROM campaigns WHERE id = OLD.campaign_id) THEN
        RETURN NULL;
    END IF;
    IF OLD.message_id IS NULL THEN
        PERFORM rollup_sub(OLD.campaign_id, NULL, NULL, NULL, rollup_sender(OLD.data), OLD.occurred_at, OLD.type);
        RETURN NULL;
    END IF;
    SELECT * INTO f FROM message_firsts WHERE message_id = OLD.message_id AND metric = OLD.type FOR UPDATE;
    IF NOT FOUND OR f.event_id <> OLD.id THEN
        RETURN NULL;
    END IF;
    PERFORM rollup_sub(f.campaign_id, f.step_id, f.variant, f.channel, f.sender_id, f.occurred_at, f.metric);
    SELECT e.id, e.occurred_at, rollup_sender(e.data) AS sender_id INTO nxt
    FROM message_events e
    WHERE e.message_id = OLD.message_id AND e.type = OLD.type AND e.campaign_id = OLD.campaign_id AND e.id <> OLD.id
    ORDER BY e.occurred_at, e.id LIMIT 1;
    IF FOUND AND EXISTS (SELECT 1 FROM messages WHERE id = OLD.message_id) THEN
        UPDATE message_firsts SET event_id = nxt.id, occurred_at = nxt.occurred_at, sender_id = nxt.sender_id
        WHERE message_id = OLD.message_id AND metric = OLD.type;
        PERFORM rollup_add(f.org_id, f.campaign_id, f.step_id, f.variant, f.channel, nxt.sender_id, nxt.occurred_at,
                           f.metric, 1);
    ELSE
        DELETE FROM message_firsts WHERE message_id = OLD.message_id AND metric = OLD.type;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION enrollments_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_rollups AS r (org_id, campaign_id, hour, enrolled)
    SELECT org_id, campaign_id, date_trunc('hour', created_at, 'UTC'), count(*)
    FROM new_enrollments GROUP BY 1, 2, 3 ORDER BY 2, 3
    ON CONFLICT ({KEY}) DO UPDATE SET enrolled = r.enrolled + EXCLUDED.enrolled;
    RETURN NULL;
END
$$;

CREATE FUNCTION enrollments_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rollup_sub(OLD.campaign_id, NULL, NULL, NULL, NULL, OLD.created_at, '{ENROLLED}');
    RETURN NULL;
END
$$;

CREATE TRIGGER message_events_rollup_insert AFTER INSERT ON message_events
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION message_events_rollup_insert();
CREATE TRIGGER message_events_rollup_delete AFTER DELETE ON message_events
    FOR EACH ROW EXECUTE FUNCTION message_events_rollup_delete();
CREATE TRIGGER enrollments_rollup_insert AFTER INSERT ON enrollments
    REFERENCING NEW TABLE AS new_enrollments FOR EACH STATEMENT EXECUTE FUNCTION enrollments_rollup_insert();
CREATE TRIGGER enrollments_rollup_delete AFTER DELETE ON enrollments
    FOR EACH ROW EXECUTE FUNCTION enrollments_rollup_delete();
"""


def upgrade() -> None:
    op.create_table(
        "campaign_rollups",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_id", sa.Uuid(), nullable=True),
        sa.Column("variant", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("sender_id", sa.Uuid(), nullable=True),
        *(sa.Column(c, sa.BigInteger(), server_default=sa.text("0"), nullable=False) for c in COLUMNS),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_rollups_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_campaign_rollups_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_rollups")),
    )
    op.create_index(op.f("ix_campaign_rollups_org_id"), "campaign_rollups", ["org_id"], unique=False)
    # Counters are updated in place: room on each page keeps those updates HOT (no index entries).
    op.execute("ALTER TABLE campaign_rollups SET (fillfactor = 70)")
    op.create_index(
        "uq_campaign_rollups_key", "campaign_rollups", list(ROLLUP_KEY), unique=True, postgresql_nulls_not_distinct=True
    )
    op.create_table(
        "message_firsts",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_id", sa.Uuid(), nullable=True),
        sa.Column("variant", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("sender_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_message_firsts_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_message_firsts_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", "metric", name=op.f("pk_message_firsts")),
    )
    op.create_index(op.f("ix_message_firsts_org_id"), "message_firsts", ["org_id"], unique=False)
    op.create_index("ix_message_firsts_campaign_id", "message_firsts", ["campaign_id"], unique=False)
    for table in TABLES:
        enable_tenant_rls(table)
    op.execute(FUNCTIONS)
    rebuild(op.get_bind())


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS enrollments_rollup_delete ON enrollments")
    op.execute("DROP TRIGGER IF EXISTS enrollments_rollup_insert ON enrollments")
    op.execute("DROP TRIGGER IF EXISTS message_events_rollup_delete ON message_events")
    op.execute("DROP TRIGGER IF EXISTS message_events_rollup_insert ON message_events")
    for fn in (
        "enrollments_rollup_delete()",
        "enrollments_rollup_insert()",
        "message_events_rollup_delete()",
        "message_events_rollup_insert()",
        "rollup_sub(uuid, uuid, varchar, varchar, uuid, timestamptz, varchar)",
        "rollup_add(uuid, uuid, uuid, varchar, varchar, uuid, timestamptz, varchar, bigint)",
        "rollup_sender(jsonb)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
