-- The double-entry ledger (TigerBeetle's model, see packages/server/src/ledger). Amounts are
-- minor units in bigint; timestamps are nanoseconds since the epoch, assigned by the ledger.
-- No foreign keys: the batch writer checks every reference while it holds the account rows'
-- locks, and a foreign key would add a lookup per row to the set-based inserts.

CREATE TABLE ledger_accounts (
  id               uuid PRIMARY KEY,
  -- Test and live money never meet: a transfer may only name accounts of its own mode.
  livemode         boolean NOT NULL,
  ledger           integer NOT NULL CHECK (ledger > 0),
  code             integer NOT NULL CHECK (code > 0),
  flags            integer NOT NULL,
  user_data_128    uuid,
  user_data_64     bigint,
  user_data_32     integer,
  debits_pending   bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
  debits_posted    bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
  credits_pending  bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
  credits_posted   bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
  timestamp        bigint NOT NULL
)
-- Balances are rewritten by every batch that touches the account: free room on each page
-- keeps those updates HOT (no index writes, no bloat of the primary key).
WITH (fillfactor = 50);
CREATE INDEX ledger_accounts_by_user_data_128 ON ledger_accounts (user_data_128) WHERE user_data_128 IS NOT NULL;

-- Immutable: rows are only ever inserted.
CREATE TABLE ledger_transfers (
  id                 uuid PRIMARY KEY,
  livemode           boolean NOT NULL,
  debit_account_id   uuid NOT NULL,
  credit_account_id  uuid NOT NULL,
  amount             bigint NOT NULL CHECK (amount >= 0),
  pending_id         uuid,
  ledger             integer NOT NULL,
  code               integer NOT NULL,
  flags              integer NOT NULL,
  timeout_s          bigint NOT NULL DEFAULT 0,
  user_data_128      uuid,
  user_data_64       bigint,
  user_data_32       integer,
  timestamp          bigint NOT NULL
);
CREATE INDEX ledger_transfers_by_debit ON ledger_transfers (debit_account_id, timestamp);
CREATE INDEX ledger_transfers_by_credit ON ledger_transfers (credit_account_id, timestamp);
CREATE INDEX ledger_transfers_by_user_data_128 ON ledger_transfers (user_data_128) WHERE user_data_128 IS NOT NULL;

-- One row per pending transfer: how it ended. A post or void updates it under its row lock,
-- which is what makes a pending transfer resolve at most once across processes.
CREATE TABLE ledger_pending_transfers (
  id           uuid PRIMARY KEY,
  state        text NOT NULL CHECK (state IN ('pending', 'posted', 'voided', 'expired')),
  expires_at   bigint,
  resolved_at  bigint
);
CREATE INDEX ledger_pending_expiring ON ledger_pending_transfers (expires_at) WHERE state = 'pending' AND expires_at IS NOT NULL;

-- Balances after each transfer, for accounts with the `history` flag.
CREATE TABLE ledger_account_balances (
  account_id       uuid NOT NULL,
  timestamp        bigint NOT NULL,
  transfer_id      uuid NOT NULL,
  debits_pending   bigint NOT NULL,
  debits_posted    bigint NOT NULL,
  credits_pending  bigint NOT NULL,
  credits_posted   bigint NOT NULL,
  PRIMARY KEY (account_id, timestamp, transfer_id)
);

-- The ledger's HTTP API is for the platform's operators and internal services, not for
-- merchants: only keys of a platform merchant (moneta merchants create --platform) may use it.
ALTER TABLE merchants ADD COLUMN is_platform boolean NOT NULL DEFAULT false;
