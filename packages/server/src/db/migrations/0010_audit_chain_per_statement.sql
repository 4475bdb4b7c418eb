-- The audit chain moves its head once per statement instead of twice per row.
--
-- Before, every appended row updated `audit_chain_head` twice (take the next seq, then store
-- the new hash). A batch of n rows left 2n versions of the one head row in one transaction,
-- each found again through the version chain, and cost about a third of an append.
--
-- Now the first row a transaction appends locks the head (SELECT ... FOR UPDATE: appends from
-- any number of processes still form one line, and `at` is still read after the lock). The
-- running head (seq and hash) then lives in a transaction-local setting that the next rows
-- read, and one UPDATE at the end of each statement writes it back. A rolled-back savepoint
-- or transaction takes the setting and the head back with it, so `seq` still has no gaps.
--
-- The application's role could set `moneta.audit_chain` itself. That forges nothing: the
-- head is written back from the rows a statement inserted, and only if they continue it
-- (below), so rows that do not link to the head fail their statement, and a head reused
-- without its lock repeats a seq (refused by the primary key) or finds the head moved.
CREATE OR REPLACE FUNCTION moneta_audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  running text := current_setting('moneta.audit_chain', true);
BEGIN
  IF running IS NULL OR running = '' THEN
    SELECT seq, hash INTO NEW.seq, NEW.prev_hash FROM audit_chain_head FOR UPDATE;
  ELSE
    NEW.seq := split_part(running, ':', 1)::bigint;
    NEW.prev_hash := decode(split_part(running, ':', 2), 'hex');
  END IF;
  NEW.seq := NEW.seq + 1;
  NEW.at := clock_timestamp();
  NEW.hash := sha256(NEW.prev_hash || moneta_audit_content(NEW.seq, NEW.at, NEW.actor, NEW.action,
    NEW.outcome, NEW.origin, NEW.merchant_id, NEW.object_type, NEW.object_id, NEW.details));
  PERFORM set_config('moneta.audit_chain', NEW.seq || ':' || encode(NEW.hash, 'hex'), true);
  RETURN NEW;
END;
$$;

-- Writes the head back once the statement's rows are in, from the rows themselves (its
-- transition table), never from the setting: the head moves only from the head the rows
-- link to (one below their first seq, the hash their first row names) to their last, and a
-- statement whose rows do not continue the head fails. So a forged setting, or a head
-- reused without its lock and since moved, fails its own statement and moves nothing, and a
-- statement that inserts no row leaves the head alone. Statement triggers fire once per
-- statement and table, with the rows of all its data-modifying CTEs, so combined statements
-- are covered.
CREATE FUNCTION moneta_audit_chain_store() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  first_seq bigint;
  first_prev bytea;
  last_seq bigint;
  last_hash bytea;
  added bigint;
BEGIN
  SELECT seq, prev_hash INTO first_seq, first_prev FROM appended ORDER BY seq LIMIT 1;
  IF first_seq IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT seq, hash INTO last_seq, last_hash FROM appended ORDER BY seq DESC LIMIT 1;
  SELECT count(*) INTO added FROM appended;
  UPDATE audit_chain_head SET seq = last_seq, hash = last_hash
   WHERE seq = first_seq - 1 AND hash = first_prev AND added = last_seq - first_seq + 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'MN010',
      MESSAGE = format('audit rows %s to %s do not continue the chain head', first_seq, last_seq);
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER audit_log_chain_store AFTER INSERT ON audit_log
  REFERENCING NEW TABLE AS appended
  FOR EACH STATEMENT EXECUTE FUNCTION moneta_audit_chain_store();
