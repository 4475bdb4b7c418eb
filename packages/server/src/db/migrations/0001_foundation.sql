-- Merchants and their API keys. Keys are stored only as SHA-256 hashes: they are
-- 190-bit random strings, so a fast hash is enough and keeps authentication cheap.
CREATE TABLE merchants (
  id          text PRIMARY KEY,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  is_demo     boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id           text PRIMARY KEY,
  merchant_id  text NOT NULL REFERENCES merchants (id),
  kind         text NOT NULL CHECK (kind IN ('secret', 'publishable')),
  livemode     boolean NOT NULL,
  key_hash     bytea NOT NULL UNIQUE,
  key_last4    text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  -- Set when the key is rolled: the old key keeps working until then.
  expires_at   timestamptz,
  rolled_to    text REFERENCES api_keys (id)
);
CREATE INDEX api_keys_by_merchant ON api_keys (merchant_id, kind, livemode);

-- High-volume tables carry merchant_id WITHOUT a foreign key on purpose: every insert
-- would take a KEY SHARE lock on the same merchant row, and many concurrent holders of
-- that lock turn into a MultiXact per insert -- a known PostgreSQL cliff that cut our
-- customer-create throughput several times over. merchant_id always comes from an
-- authenticated API key, and merchants are never deleted.
CREATE TABLE customers (
  id           text PRIMARY KEY,
  merchant_id  text NOT NULL,
  livemode     boolean NOT NULL,
  email        text,
  name         text,
  phone        text,
  description  text,
  address      jsonb,
  metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at   timestamptz NOT NULL DEFAULT now(),
  deleted_at   timestamptz
);
-- Lists are newest first by id (ids are time-sortable), per merchant and mode.
CREATE INDEX customers_list ON customers (merchant_id, livemode, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX customers_by_email ON customers (merchant_id, livemode, email) WHERE deleted_at IS NULL;

-- Idempotency keys (Stripe semantics, Brandur Leach's design): one row per merchant,
-- mode and key, holding the request fingerprint, a lock, the recovery point reached by
-- the request's atomic phases, and the stored first response.
CREATE TABLE idempotency_keys (
  id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  merchant_id          text NOT NULL,
  livemode             boolean NOT NULL,
  idempotency_key      text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
  operation            text NOT NULL,
  request_method       text NOT NULL,
  request_path         text NOT NULL,
  request_fingerprint  bytea NOT NULL,
  -- NULL when the operation's parameters must not be stored (card data); such a
  -- request is resumed only by the client's own retry, never by the completer.
  request_params       jsonb,
  request_id           text NOT NULL,
  api_key_id           text NOT NULL,
  locked_at            timestamptz,
  locked_by            uuid,
  recovery_point       text NOT NULL DEFAULT 'started',
  phase_state          jsonb NOT NULL DEFAULT '{}'::jsonb,
  response_status      integer,
  response_body        text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  last_run_at          timestamptz NOT NULL DEFAULT now(),
  completed_at         timestamptz,
  UNIQUE (merchant_id, livemode, idempotency_key),
  CHECK ((response_status IS NULL) = (response_body IS NULL)),
  CHECK (response_status IS NULL OR locked_by IS NULL)
);
CREATE INDEX idempotency_keys_unfinished ON idempotency_keys (locked_at) WHERE response_status IS NULL;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
