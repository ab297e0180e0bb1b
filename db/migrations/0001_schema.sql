-- The whole schema of API v1.  PostgreSQL is the truth for everything that
-- matters for security or money; Redis only mirrors and caches.
-- Applied in one transaction by finance-migrate.

CREATE TABLE users (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	email		text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
	name		text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
	password_hash	text NOT NULL,
	role		text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
	-- lockout: consecutive failures and the end of the current lock
	failed_logins	integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
	locked_until	timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	deleted_at	timestamptz
);
-- Unique over deleted rows too: a deleted account's email stays reserved
-- so that an admin can restore it.
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE sessions (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id		uuid NOT NULL REFERENCES users (id),
	ip		text NOT NULL DEFAULT '',
	user_agent	text NOT NULL DEFAULT '' CHECK (char_length(user_agent) <= 512),
	created_at	timestamptz NOT NULL DEFAULT now(),
	last_used_at	timestamptz NOT NULL DEFAULT now(),
	revoked_at	timestamptz,
	revoked_reason	text
);
CREATE INDEX sessions_user_live_idx ON sessions (user_id, created_at DESC)
	WHERE revoked_at IS NULL;

-- Only a hash of each refresh token is stored.  A session's tokens form
-- one family: presenting a rotated one (rotated_at set) revokes the session.
CREATE TABLE refresh_tokens (
	token_hash	bytea PRIMARY KEY,
	session_id	uuid NOT NULL REFERENCES sessions (id),
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	rotated_at	timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE transactions (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id		uuid NOT NULL REFERENCES users (id),
	-- minor units; the bound is JSON's exact-integer range
	amount		bigint NOT NULL
			CHECK (amount BETWEEN -9007199254740991 AND 9007199254740991),
	currency	text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
	description	text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
	category	text NOT NULL DEFAULT '' CHECK (char_length(category) <= 64),
	occurred_on	date NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	deleted_at	timestamptz
);
-- The list order (API.md): newest occurred_on, then created_at, then id.
-- Live rows have their own index so the default list is an index scan.
CREATE INDEX transactions_list_live_idx ON transactions
	(user_id, occurred_on DESC, created_at DESC, id DESC)
	WHERE deleted_at IS NULL;
CREATE INDEX transactions_list_all_idx ON transactions
	(user_id, occurred_on DESC, created_at DESC, id DESC);

-- Append-only: the trigger below refuses UPDATE and DELETE.
CREATE TABLE audit_events (
	seq		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id		uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
	user_id		uuid REFERENCES users (id),
	action		text NOT NULL CHECK (action ~ '^[a-z_]{1,64}$'),
	ip		text NOT NULL DEFAULT '',
	user_agent	text NOT NULL DEFAULT '',
	request_id	text NOT NULL DEFAULT '',
	details		jsonb NOT NULL DEFAULT '{}'::jsonb,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_user_idx ON audit_events (user_id, seq DESC);
CREATE INDEX audit_events_action_idx ON audit_events (action, seq DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_events is append-only'
		USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
	FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
	FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE feature_flags (
	key		text PRIMARY KEY CHECK (key ~ '^[a-z0-9_]{1,64}$'),
	enabled		boolean NOT NULL DEFAULT false,
	rollout_percent	integer NOT NULL DEFAULT 100
			CHECK (rollout_percent BETWEEN 0 AND 100),
	description	text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	updated_by	uuid REFERENCES users (id)
);
INSERT INTO feature_flags (key, enabled, rollout_percent, description)
VALUES ('pdf_export', true, 100, 'PDF statements (GET /export/transactions.pdf)');

-- A replayed POST with the same key returns the stored response.
CREATE TABLE idempotency_keys (
	user_id		uuid NOT NULL REFERENCES users (id),
	key		text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
	request_hash	bytea NOT NULL,
	status_code	integer,		-- NULL while the first request runs
	response_body	text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
