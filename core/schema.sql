-- MarketLab schema. Every CREATE TABLE lives here, in numbered migrations.
-- core/store.py runs each "-- migration: N" section whose N is above the database's
-- schema_version, in order, each in its own transaction. Never edit a released section:
-- add a new one.

-- migration: 1
CREATE TABLE products (
    product_id  VARCHAR PRIMARY KEY,
    title       VARCHAR NOT NULL,
    brand       VARCHAR,
    category    VARCHAR,
    price       DOUBLE CHECK (price >= 0),
    currency    VARCHAR,
    attributes  JSON,            -- every uploaded column not in the contract, by its source name
    description VARCHAR,
    updated_at  TIMESTAMP NOT NULL
);

CREATE TABLE users (
    user_id     VARCHAR PRIMARY KEY,
    first_seen  TIMESTAMP,
    country     VARCHAR,
    attributes  JSON             -- extra profile columns
);

-- No primary key: a real log repeats (user_id, ts, event_name) for different products, and
-- an index would slow the million-row loads. Re-uploads replace rows on the natural key
-- (user_id, ts, event_name, product_id) inside the ingest transaction instead.
CREATE TABLE events (
    user_id     VARCHAR NOT NULL,
    ts          TIMESTAMP NOT NULL,   -- UTC, no time zone
    event_name  VARCHAR NOT NULL,
    product_id  VARCHAR,
    session_id  VARCHAR,
    campaign    VARCHAR,
    variant_id  VARCHAR,
    device      VARCHAR,
    source      VARCHAR,
    revenue     DOUBLE
);

CREATE TABLE reviews (
    review_id   VARCHAR PRIMARY KEY,  -- generated from the row's content when a file has none
    product_id  VARCHAR,
    user_id     VARCHAR,
    rating      INTEGER CHECK (rating BETWEEN 1 AND 5),
    title       VARCHAR,
    text        VARCHAR,
    ts          TIMESTAMP
);

CREATE TABLE copy_variants (
    variant_id  VARCHAR PRIMARY KEY,
    product_id  VARCHAR NOT NULL,
    channel     VARCHAR NOT NULL,
    tone        VARCHAR,
    segment_id  VARCHAR,
    fields      JSON NOT NULL,        -- {"headline": ..., "description": ...}
    model       VARCHAR,
    params      JSON,                 -- temperature, seed, prompt: the audit trail
    scores      JSON,
    status      VARCHAR NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'approved', 'rejected')),
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE segment_runs (
    run_id      VARCHAR PRIMARY KEY,
    created_at  TIMESTAMP NOT NULL,
    method      VARCHAR NOT NULL,
    features    JSON,
    k           INTEGER,
    quality     JSON,
    params      JSON
);

CREATE TABLE segments (
    run_id      VARCHAR NOT NULL,
    segment_id  VARCHAR NOT NULL,
    name        VARCHAR,
    persona     VARCHAR,
    profile     JSON,
    PRIMARY KEY (run_id, segment_id)
);

CREATE TABLE user_segments (
    run_id      VARCHAR NOT NULL,
    user_id     VARCHAR NOT NULL,
    segment_id  VARCHAR NOT NULL,
    PRIMARY KEY (run_id, user_id)
);

-- One row per committed upload: what came in, from which file, with what result.
CREATE TABLE ingest_log (
    ingested_at TIMESTAMP NOT NULL,
    table_name  VARCHAR NOT NULL,
    file_name   VARCHAR,
    file_sha256 VARCHAR,
    rows_in_file INTEGER,
    inserted    INTEGER,
    updated     INTEGER,
    rejected    INTEGER
);

-- migration: 2
-- The funnel index (core/funnels.py): the event log re-keyed for funnel queries. Users and event
-- names become dense integers and rows are sorted by event, user and time, so a step reads only
-- its own row groups and per-user joins run on small integers. Derived data: core/funnels.py
-- rebuilds it whenever events changed (funnel_index_state). IF NOT EXISTS because databases used
-- before this migration already got the tables from core.funnels.ensure_index. A migration that
-- adds a column to events should add it here too.
CREATE TABLE IF NOT EXISTS funnel_users (u INTEGER NOT NULL, user_id VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS funnel_event_names (ev INTEGER NOT NULL, event_name VARCHAR NOT NULL, events BIGINT, users BIGINT);
CREATE TABLE IF NOT EXISTS funnel_events (
    u INTEGER NOT NULL,      -- funnel_users.u
    t BIGINT NOT NULL,       -- epoch microseconds of ts
    ev INTEGER NOT NULL,     -- funnel_event_names.ev
    user_id VARCHAR, ts TIMESTAMP, event_name VARCHAR, product_id VARCHAR, session_id VARCHAR,
    campaign VARCHAR, variant_id VARCHAR, device VARCHAR, source VARCHAR, revenue DOUBLE
);
CREATE TABLE IF NOT EXISTS funnel_index_state (fingerprint VARCHAR NOT NULL, built_at TIMESTAMP NOT NULL, events BIGINT NOT NULL);

-- migration: 3
-- Order logs (issue 12): an order export's rows are separate purchases even when they share user,
-- time and product, so events keep one row per source row. row_key is that row's identity (a hash
-- of the whole source row and its repeat number in the file): re-uploading a file replaces its
-- rows by row_key. Rows loaded before this migration have none and are matched the old way once.
ALTER TABLE events ADD COLUMN order_id VARCHAR;
ALTER TABLE events ADD COLUMN quantity DOUBLE;
ALTER TABLE events ADD COLUMN row_key VARCHAR;

-- migration: 4
-- Sentence vectors of review texts (core/segments/text.py), by model and text hash: derived data,
-- so a segmentation re-run or a restart embeds only texts it has not seen.
CREATE TABLE text_embeddings (
    model       VARCHAR NOT NULL,
    text_hash   VARCHAR NOT NULL,
    vector      FLOAT[384] NOT NULL,
    PRIMARY KEY (model, text_hash)
);
