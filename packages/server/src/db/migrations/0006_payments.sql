-- Payments: PaymentIntents, the acquirer calls made for them (attempts), charges, refunds,
-- and the outbox of events. Every state change commits with its attempt's outcome, its
-- ledger transfers and its events in one transaction.

-- Which acquirer a merchant's payments go through (routing between several comes later).
ALTER TABLE merchants ADD COLUMN acquirer text NOT NULL DEFAULT 'acme';

CREATE TABLE payment_intents (
  id                   text PRIMARY KEY,
  merchant_id          text NOT NULL,
  livemode             boolean NOT NULL,
  amount               bigint NOT NULL CHECK (amount > 0),
  currency             text NOT NULL,
  status               text NOT NULL CHECK (status IN ('requires_payment_method', 'requires_confirmation',
                         'requires_action', 'processing', 'requires_capture', 'succeeded', 'canceled')),
  capture_method       text NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
  customer_id          text,
  payment_method_id    text,
  description          text,
  statement_descriptor text,
  metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
  amount_capturable    bigint NOT NULL DEFAULT 0,
  amount_received      bigint NOT NULL DEFAULT 0,
  latest_charge        text,
  last_payment_error   jsonb,
  cancellation_reason  text,
  canceled_at          timestamptz,
  acquirer             text,
  -- The acquirer's authorization and our pending ledger transfer for it, once authorized.
  authorization_id     text,
  -- Set when the janitor gave up resolving an attempt: an operator must look.
  needs_review         boolean NOT NULL DEFAULT false,
  created_at           timestamptz NOT NULL DEFAULT now(),
  CHECK (amount_received <= amount AND amount_capturable <= amount)
);
CREATE INDEX payment_intents_list ON payment_intents (merchant_id, livemode, id DESC);
CREATE INDEX payment_intents_by_customer ON payment_intents (customer_id, id DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX payment_intents_review ON payment_intents (id) WHERE needs_review;

-- One row per acquirer call. Its id is our reference and the acquirer's idempotency key.
CREATE TABLE payment_attempts (
  id                  text PRIMARY KEY,
  payment_intent_id   text NOT NULL,
  merchant_id         text NOT NULL,
  livemode            boolean NOT NULL,
  kind                text NOT NULL CHECK (kind IN ('authorize', 'capture', 'void', 'refund')),
  amount              bigint NOT NULL,
  status              text NOT NULL CHECK (status IN ('started', 'succeeded', 'failed', 'unknown')),
  acquirer            text NOT NULL,
  refund_id           text,
  detail              jsonb,
  inquiries           integer NOT NULL DEFAULT 0,
  next_inquiry_at     timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  resolved_at         timestamptz
);
CREATE INDEX payment_attempts_by_intent ON payment_attempts (payment_intent_id, created_at);
-- The janitor's queue: attempts whose outcome is not known yet.
CREATE INDEX payment_attempts_unresolved ON payment_attempts (next_inquiry_at) WHERE status IN ('started', 'unknown');

CREATE TABLE charges (
  id                  text PRIMARY KEY,
  payment_intent_id   text NOT NULL,
  merchant_id         text NOT NULL,
  livemode            boolean NOT NULL,
  amount              bigint NOT NULL,
  amount_captured     bigint NOT NULL DEFAULT 0,
  amount_refunded     bigint NOT NULL DEFAULT 0,
  currency            text NOT NULL,
  status              text NOT NULL CHECK (status IN ('succeeded', 'failed', 'pending')),
  captured            boolean NOT NULL DEFAULT false,
  failure_code        text,
  failure_message     text,
  outcome             jsonb NOT NULL,
  payment_method_id   text,
  card                jsonb NOT NULL,
  acquirer_id         text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  CHECK (amount_refunded <= amount_captured AND amount_captured <= amount)
);

CREATE TABLE refunds (
  id                  text PRIMARY KEY,
  payment_intent_id   text NOT NULL,
  charge_id           text NOT NULL,
  merchant_id         text NOT NULL,
  livemode            boolean NOT NULL,
  amount              bigint NOT NULL CHECK (amount > 0),
  currency            text NOT NULL,
  status              text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  reason              text,
  failure_reason      text,
  metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_list ON refunds (merchant_id, livemode, id DESC);
CREATE INDEX refunds_by_intent ON refunds (payment_intent_id);

-- The outbox: Stripe-shaped events, committed with the change they describe. `seq` orders
-- them (per object too); delivery (webhooks, NATS) is the events issue.
CREATE TABLE events (
  seq          bigserial PRIMARY KEY,
  id           text NOT NULL UNIQUE,
  merchant_id  text NOT NULL,
  livemode     boolean NOT NULL,
  type         text NOT NULL,
  object_id    text NOT NULL,
  data         jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_by_object ON events (object_id, seq);
