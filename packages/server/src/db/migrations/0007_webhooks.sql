-- Events leave the outbox through the dispatcher: it fans each event out to the webhook
-- endpoints that want it (one delivery row per endpoint) and marks the event dispatched, in
-- one statement. Deliveries are then attempted, recorded and retried on their own schedule.

-- The Events API lists newest first per merchant and mode.
CREATE INDEX events_list ON events (merchant_id, livemode, id DESC);
-- What is still in the outbox. Partial: it stays as small as the backlog.
ALTER TABLE events ADD COLUMN dispatched_at timestamptz;
CREATE INDEX events_undispatched ON events (seq) WHERE dispatched_at IS NULL;

CREATE TABLE webhook_endpoints (
  id                   text PRIMARY KEY,
  merchant_id          text NOT NULL,
  livemode             boolean NOT NULL,
  url                  text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
  -- Event types, or '*' for all.
  enabled_events       text[] NOT NULL CHECK (cardinality(enabled_events) BETWEEN 1 AND 256),
  description          text,
  metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
  status               text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
  -- The signing secret (whsec_…), and during a roll the one before it, which keeps signing
  -- until previous_secret_expires_at. Shown once, at creation or roll.
  secret               text NOT NULL,
  previous_secret      text,
  previous_secret_expires_at timestamptz,
  -- Since when every delivery has failed (null: the last one succeeded); past three days the
  -- endpoint is disabled.
  failing_since        timestamptz,
  deleted_at           timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_list ON webhook_endpoints (merchant_id, livemode, id DESC) WHERE deleted_at IS NULL;

-- One row per event and endpoint: the delivery, until it succeeds or its schedule runs out.
CREATE TABLE webhook_deliveries (
  endpoint_id      text NOT NULL,
  event_id         text NOT NULL,
  merchant_id      text NOT NULL,
  livemode         boolean NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- When it is due; while an attempt is in flight, when that attempt's lease runs out.
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_status_code integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz,
  PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);

-- Every attempt, as the operator sees it: status, latency, a short excerpt of the answer.
CREATE TABLE webhook_attempts (
  endpoint_id      text NOT NULL,
  event_id         text NOT NULL,
  attempt          integer NOT NULL CHECK (attempt >= 1),
  at               timestamptz NOT NULL DEFAULT now(),
  status_code      integer,
  latency_ms       integer NOT NULL CHECK (latency_ms >= 0),
  response_excerpt text CHECK (length(response_excerpt) <= 500),
  error            text CHECK (length(error) <= 500),
  PRIMARY KEY (endpoint_id, event_id, attempt)
);
