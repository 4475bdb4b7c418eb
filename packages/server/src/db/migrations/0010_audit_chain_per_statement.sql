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
-- The application's role could set `moneta.audit_chain` itself. That forges nothing the
-- verifier misses: a made-up head leaves a gap or a hash that does not link (reported by
-- `moneta audit verify`), and a head reused without the lock repeats a seq (refused by the
-- primary key).
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

-- Writes the running head back once the statement's rows are in. Statement triggers fire
-- after every data-modifying CTE of a statement too, so combined statements are covered.
CREATE FUNCTION moneta_audit_chain_store() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  running text := current_setting('moneta.audit_chain', true);
BEGIN
  IF running IS NOT NULL AND running <> '' THEN
    UPDATE audit_chain_head
       SET seq = split_part(running, ':', 1)::bigint,
           hash = decode(split_part(running, ':', 2), 'hex');
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER audit_log_chain_store AFTER INSERT ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION moneta_audit_chain_store();
