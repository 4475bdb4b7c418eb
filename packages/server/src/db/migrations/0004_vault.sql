-- Tokenization inserts a card, its CVC and a payment method in one statement, the hottest
-- write of the vault: none of these tables has a foreign key, whose check is an extra query
-- per row (and a KEY SHARE lock on the one merchant row every insert would name). Vault.deleteCard
-- removes a card, its CVC and the payment methods' reference to it together.
--
-- The card vault. Card numbers exist only here, and only sealed (AES-256-GCM) under a data
-- key of their own, which is itself sealed under a version of the key-encryption key (KEK).
-- The KEK is never in the database; `kek_version` says which version wraps each data key.

-- One row per KEK version ever used: a check value proves at start that the configured
-- keyring is the one this database was written with; retired_at marks versions destroyed.
CREATE TABLE vault_kek_versions (
  version      integer PRIMARY KEY CHECK (version >= 1),
  check_value  bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  retired_at   timestamptz
);

CREATE TABLE vault_cards (
  id           text PRIMARY KEY,
  merchant_id  text NOT NULL,
  livemode     boolean NOT NULL,
  kek_version  integer NOT NULL,
  wrapped_key  bytea NOT NULL,
  pan          bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- The CVC, only until the first authorization that uses it or its expiry, whichever comes
-- first (PCI DSS 3.3.1.2), under a data key of its own.
CREATE TABLE vault_cvcs (
  card_id      text PRIMARY KEY,
  kek_version  integer NOT NULL,
  wrapped_key  bytea NOT NULL,
  cvc          bytea NOT NULL,
  expires_at   timestamptz NOT NULL
);
CREATE INDEX vault_cvcs_expiring ON vault_cvcs (expires_at);

CREATE TABLE payment_methods (
  id               text PRIMARY KEY,
  merchant_id      text NOT NULL,
  livemode         boolean NOT NULL,
  type             text NOT NULL CHECK (type = 'card'),
  customer_id      text REFERENCES customers (id),
  -- Null once the card was deleted from the vault; the payment method then cannot be used.
  vault_card_id    text,
  card_brand       text NOT NULL,
  card_last4       text NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
  card_exp_month   integer NOT NULL CHECK (card_exp_month BETWEEN 1 AND 12),
  card_exp_year    integer NOT NULL,
  card_fingerprint text NOT NULL,
  card_funding     text NOT NULL,
  card_country     text,
  cvc_check        text CHECK (cvc_check IN ('pass', 'fail', 'unavailable', 'unchecked')),
  billing_details  jsonb NOT NULL DEFAULT '{}'::jsonb,
  metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_methods_by_customer ON payment_methods (customer_id, id DESC) WHERE customer_id IS NOT NULL;
-- For Vault.deleteCard, which clears the reference of every payment method to a deleted card.
CREATE INDEX payment_methods_by_vault_card ON payment_methods (vault_card_id);
