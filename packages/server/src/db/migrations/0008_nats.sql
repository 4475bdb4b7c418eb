-- Publishing to NATS JetStream (when NATS_URL is set) is a second way out of the outbox,
-- with its own mark. Without NATS the dispatcher sets it with dispatched_at, so the partial
-- index stays as small as the backlog either way.
ALTER TABLE events ADD COLUMN published_at timestamptz;
UPDATE events SET published_at = coalesce(dispatched_at, now()) WHERE published_at IS NULL AND dispatched_at IS NOT NULL;
CREATE INDEX events_unpublished ON events (seq) WHERE published_at IS NULL;

-- What a consumer built with the NATS helper has handled, so a redelivered event is skipped.
CREATE TABLE nats_handled_events (
  consumer    text NOT NULL CHECK (length(consumer) BETWEEN 1 AND 200),
  event_id    text NOT NULL,
  handled_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
