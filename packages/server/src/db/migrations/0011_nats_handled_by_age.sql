-- Handled marks are kept only while the stream can still redeliver their event (its max_age,
-- 30 days); the events reaper deletes older ones in bounded batches, found through this BRIN
-- index (marks arrive in time order, and a BRIN costs next to nothing per insert).
CREATE INDEX nats_handled_events_by_age ON nats_handled_events USING brin (handled_at);
