-- The lockout counted every password check as a failure from the moment
-- it began (so that racing guesses stay within LOCKOUT_THRESHOLD), which
-- refused the right password while other checks were still running.
-- failed_logins now holds only failures that have happened; the checks
-- still running are listed here, each by the PostgreSQL backend pid of
-- its worker, which holds a session advisory lock on that pid for as long
-- as the check runs (lib/auth.c).  A worker that dies takes its lock with
-- it, so its entry is recognised as gone.
-- Safe while the old version serves: a column with a constant default is
-- added without rewriting the table, and the old code never reads it (it
-- keeps counting its checks as failures, which only errs on the safe side).

ALTER TABLE users ADD COLUMN login_inflight integer[] NOT NULL DEFAULT '{}';
