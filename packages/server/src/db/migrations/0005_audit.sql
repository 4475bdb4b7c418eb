-- The audit log (PCI DSS 10): who did what, when, with what outcome, from where, to which
-- object. Append-only and tamper-evident: every row carries the SHA-256 of the previous
-- row's hash and its own content, so an edited, removed or inserted row breaks the chain
-- at that row (`moneta audit verify`). `details` holds ids and flags only, never card data.
CREATE TABLE audit_log (
  seq          bigint PRIMARY KEY CHECK (seq > 0),
  at           timestamptz NOT NULL DEFAULT now(),
  actor        text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  action       text NOT NULL CHECK (length(action) BETWEEN 1 AND 200),
  outcome      text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
  origin       text NOT NULL CHECK (length(origin) BETWEEN 1 AND 200),
  merchant_id  text,
  object_type  text,
  object_id    text,
  details      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
  prev_hash    bytea NOT NULL,
  hash         bytea NOT NULL
);

-- The end of the chain, in one row. Appending locks this row until the appending
-- transaction ends, so appends from any number of processes form one line, never a fork;
-- and because the row is rolled back with a failed transaction (unlike a sequence), `seq`
-- has no gaps: a missing number is a deleted row.
CREATE TABLE audit_chain_head (
  id    boolean PRIMARY KEY DEFAULT true CHECK (id),
  seq   bigint NOT NULL,
  hash  bytea NOT NULL
);
INSERT INTO audit_chain_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

-- The bytes a row's hash covers: every column but the two hashes, as a JSON array (quoted
-- and escaped, so no two rows share a serialization; NULL stays distinct from ''). `at` is
-- written in UTC with a fixed pattern, so neither TimeZone nor DateStyle changes the bytes;
-- jsonb prints its keys in one canonical order. Declared IMMUTABLE on purpose: to_char and
-- convert_to are only STABLE because other patterns and encodings depend on settings.
-- The trigger and the verifier both call this, so they can never disagree.
CREATE FUNCTION moneta_audit_content(
  seq bigint, at timestamptz, actor text, action text, outcome text, origin text,
  merchant_id text, object_type text, object_id text, details jsonb
) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT convert_to(jsonb_build_array(
    seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    actor, action, outcome, origin, merchant_id, object_type, object_id, details)::text, 'UTF8')
$$;

-- Links each new row to the head: the UPDATE takes the head row's lock (a concurrent
-- appender waits here until this transaction ends, then reads the head it left), assigns
-- the next seq, and the row's hash moves the head. `at` is read after the lock, so it
-- grows with seq. Whatever the caller sent for seq, at or the hashes is overwritten.
-- SECURITY DEFINER: the application's role needs only INSERT and SELECT on audit_log.
CREATE FUNCTION moneta_audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE audit_chain_head SET seq = seq + 1 RETURNING seq, hash INTO NEW.seq, NEW.prev_hash;
  NEW.at := clock_timestamp();
  NEW.hash := sha256(NEW.prev_hash || moneta_audit_content(NEW.seq, NEW.at, NEW.actor, NEW.action,
    NEW.outcome, NEW.origin, NEW.merchant_id, NEW.object_type, NEW.object_id, NEW.details));
  UPDATE audit_chain_head SET hash = NEW.hash;
  RETURN NEW;
END;
$$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION moneta_audit_chain();

-- Append-only: any UPDATE, DELETE or TRUNCATE fails, even one that matches no row
-- (statement triggers). MN010: the audit log refused a change. Only the owner can disable
-- these triggers, and a change made meanwhile still shows in the chain.
CREATE FUNCTION moneta_audit_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'MN010',
    MESSAGE = format('%s is append-only: %s is not allowed', TG_TABLE_NAME, TG_OP);
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION moneta_audit_refuse();
-- The head moves only from the chain trigger (trigger depth 1), never by a statement of its own.
CREATE TRIGGER audit_chain_head_guard BEFORE UPDATE ON audit_chain_head
  FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION moneta_audit_refuse();
CREATE TRIGGER audit_chain_head_fixed BEFORE INSERT OR DELETE OR TRUNCATE ON audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION moneta_audit_refuse();
