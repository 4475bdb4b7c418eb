-- Data keys per batch of cards instead of per value. Each vault process seals card numbers
-- under one data key and CVCs under another until a key has sealed 10,000 values or is an
-- hour old; each data key is wrapped under the KEK once, here, instead of once per value.
-- Tokenization then does two AES-GCM seals instead of four, writes no wrapped key, and a
-- KEK rotation re-wraps a few rows per process and hour instead of two per card.
--
-- A sealed value stays bound to its row by its additional data (`pan:<card id>`), so a
-- ciphertext moved to another card does not open even though cards share a data key.
CREATE TABLE vault_data_keys (
  id           text PRIMARY KEY,
  -- 'pan' or 'cvc': CVCs are never sealed under a card number's key.
  purpose      text NOT NULL,
  kek_version  integer NOT NULL,
  wrapped_key  bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Cards and CVCs sealed before this migration keep their own wrapped data key; new rows name
-- a batch key instead. The vault writes one or the other, never both.
ALTER TABLE vault_cards
  ADD COLUMN data_key_id text,
  ALTER COLUMN kek_version DROP NOT NULL,
  ALTER COLUMN wrapped_key DROP NOT NULL;
ALTER TABLE vault_cvcs
  ADD COLUMN data_key_id text,
  ALTER COLUMN kek_version DROP NOT NULL,
  ALTER COLUMN wrapped_key DROP NOT NULL;

-- Rotation finds the few rows left with a key of their own without reading every card.
CREATE INDEX vault_cards_own_key ON vault_cards (id) WHERE wrapped_key IS NOT NULL;
CREATE INDEX vault_cvcs_own_key ON vault_cvcs (card_id) WHERE wrapped_key IS NOT NULL;

-- A rotation now forbids old KEK versions on vault_data_keys only: cards and CVCs are no
-- longer written with a wrapped key, and every CHECK costs each insert a parse of its
-- expression (PostgreSQL prepares CHECK constraints again for every statement).
ALTER TABLE vault_cards DROP CONSTRAINT IF EXISTS vault_cards_kek_current;
ALTER TABLE vault_cvcs DROP CONSTRAINT IF EXISTS vault_cvcs_kek_current;
