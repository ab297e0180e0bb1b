-- Every worker trusts a session's "alive" entry in Redis for up to 60 s.
-- The revoking worker replaces that entry with a tombstone, but it may
-- not reach Redis (a partition, a stall past its patience) or may die
-- between its COMMIT and the tombstone.  PostgreSQL, the truth, also
-- tells every worker at the commit: each one LISTENs and looks at what
-- arrived before it trusts an entry (lib/sessions.c).  A trigger, so that
-- every way a session is revoked notifies, an operator's UPDATE included.
-- Adding a function and a trigger is safe while the old version serves:
-- it has no listener, and the notification costs it nothing.

CREATE FUNCTION fin_session_revoked_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('fin_session_revoked', NEW.id::text);
	RETURN NULL;
END
$$;

CREATE TRIGGER sessions_revoked_notify
	AFTER UPDATE OF revoked_at ON sessions
	FOR EACH ROW
	WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
	EXECUTE FUNCTION fin_session_revoked_notify();
