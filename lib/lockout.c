/*
 * The lockout.  It is counted in PostgreSQL, and every check of a user's
 * password counts (login, POST /auth/password, DELETE /auth/me).  Two numbers make
 * it: failed_logins, the failures that have happened, and login_inflight,
 * the checks running now.  A check starts by taking a place in flight
 * while failures + in flight < LOCKOUT_THRESHOLD, so that however many
 * workers and hosts race, no more than the threshold of answers that say
 * "wrong" can come out before the lock.  A check that finds no place
 * still hashes, then settles: when the places are held only by checks
 * still running, it waits for them to end (one password hash at most)
 * and is answered by what they came to.  So the right password is never
 * refused because others are in flight, and no answer -- not even a
 * 200, which would tell a wrong guess by its absence -- comes out that
 * the threshold has no room for.  No row lock is held while hashing.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

/*
 * The checks in flight are the backend pids in login_inflight (migration
 * 0003); each holds a session advisory lock on (LOGIN_CLASS, its pid)
 * for as long as its check runs, so an entry whose lock is free is a
 * check that died with its worker.  The class keeps these keys apart
 * from every bigint key (lib/migrate.c).
 */
#define LOGIN_CLASS	"1819240302"	/* "logn" */
/*
 * Takes a place in flight when there is one: not deleted, not locked, and
 * failures + checks in flight below the threshold ($2).  A lock that has
 * run out counts no failures.  Answers gone, locked (with the seconds
 * left), admitted or pending, and the hash to check.  The row lock lasts
 * this statement only; the advisory lock is taken before the pid can be
 * seen (at commit).
 */
static const struct fin_stmt stmt_user_reserve = {
	"user_login_reserve",
	"WITH o AS (SELECT id, password_hash, deleted_at IS NOT NULL AS gone,"
	"  coalesce(locked_until > now(), false) AS locked,"
	"  ceil(extract(epoch FROM locked_until - now()))::bigint AS left_s,"
	"  CASE WHEN locked_until <= now() THEN 0 ELSE failed_logins END"
	"   + cardinality(login_inflight) < $2::int AS room"
	"  FROM users WHERE id = $1 FOR NO KEY UPDATE),"
	" a AS (UPDATE users u"
	"  SET login_inflight = u.login_inflight || pg_backend_pid()"
	"  FROM o WHERE u.id = o.id AND NOT o.gone AND NOT o.locked AND o.room"
	"  RETURNING pg_advisory_lock(" LOGIN_CLASS ", pg_backend_pid()))"
	" SELECT CASE WHEN o.gone THEN 'gone' WHEN o.locked THEN 'locked'"
	"  WHEN EXISTS (SELECT FROM a) THEN 'admitted' ELSE 'pending' END,"
	"  CASE WHEN o.locked THEN o.left_s ELSE 0 END, o.password_hash"
	" FROM o", 2 };
/*
 * Settles a check whose password was right ($2 true), wrong (false) or
 * not checked (NULL: it gives its place back).  An admitted check ($3)
 * always counts; a pending one counts only if there is a place now, is
 * told "locked" if the account is, else "blocked" with a pid to wait
 * for.  Right resets the count -- unless the hash changed since it was
 * read ($6): "stale", counted neither way.  Wrong counts, and the
 * threshold-th failure locks ("locks").  Entries of dead checks go.  The
 * CTE sees the row as it is when locked; the RETURNING unlocks the pid.
 */
static const struct fin_stmt stmt_user_settle = {
	"user_login_settle",
	"WITH o AS (SELECT id, deleted_at IS NOT NULL AS gone,"
	"  coalesce(locked_until > now(), false) AS locked,"
	"  ceil(extract(epoch FROM locked_until - now()))::bigint AS left_s,"
	"  CASE WHEN locked_until <= now() THEN 0 ELSE failed_logins END AS f,"
	"  password_hash IS NOT DISTINCT FROM $6 AS fresh,"
	"  pg_backend_pid() = ANY (login_inflight) AS mine,"
	"  ARRAY(SELECT p FROM unnest(login_inflight) AS p"
	"   WHERE p <> pg_backend_pid() AND"
	"   NOT pg_try_advisory_xact_lock_shared(" LOGIN_CLASS ", p)) AS others"
	"  FROM users WHERE id = $1 FOR NO KEY UPDATE),"
	" d AS (SELECT o.*, CASE WHEN o.gone THEN 'gone'"
	"  WHEN $2::boolean IS NULL THEN 'released'"
	"  WHEN NOT $3::boolean AND o.locked THEN 'locked'"
	"  WHEN NOT $3::boolean AND cardinality(o.others) > 0"
	"   AND o.f + cardinality(o.others) >= $4::int THEN 'blocked'"
	"  WHEN $2::boolean AND NOT o.fresh THEN 'stale'"
	"  WHEN $2::boolean THEN 'right'"
	"  WHEN o.f + 1 >= $4::int THEN 'locks'"
	"  ELSE 'wrong' END AS verdict FROM o)"
	" UPDATE users u SET"
	" failed_logins = CASE d.verdict WHEN 'right' THEN 0"
	"  WHEN 'wrong' THEN d.f + 1 WHEN 'locks' THEN d.f + 1"
	"  ELSE u.failed_logins END,"
	" locked_until = CASE d.verdict WHEN 'right' THEN NULL"
	"  WHEN 'locks' THEN now() + $5::bigint * interval '1 second'"
	"  WHEN 'wrong' THEN CASE WHEN d.locked THEN u.locked_until END"
	"  ELSE u.locked_until END,"
	" login_inflight = d.others"
	" FROM d WHERE u.id = d.id"
	" RETURNING d.verdict, CASE WHEN d.verdict = 'locked' THEN d.left_s"
	"  ELSE 0 END, coalesce(d.others[1], 0),"
	"  CASE WHEN d.mine THEN"
	"   pg_advisory_unlock(" LOGIN_CLASS ", pg_backend_pid()) END", 6 };
/* Returns when the check of backend $1 has ended (the lock is free). */
static const struct fin_stmt stmt_login_wait = {
	"user_login_wait",
	"SELECT pg_advisory_xact_lock_shared(" LOGIN_CLASS ", $1::int)", 1 };
/* When a settle failed: gives the lock back if this session still has it. */
static const struct fin_stmt stmt_login_release = {
	"user_login_release",
	"SELECT pg_advisory_unlock(" LOGIN_CLASS ", pg_backend_pid())"
	" FROM pg_locks WHERE locktype = 'advisory' AND granted"
	"  AND pid = pg_backend_pid() AND classid = " LOGIN_CLASS
	"  AND objid = pg_backend_pid() AND objsubid = 2", 0 };

/*
 * One check of a user's password, counted by the lockout (see the top of
 * this file).  SETTLE_WAITS_MAX bounds how often a check with no place
 * waits for one in flight; each wait ends with that check, within one
 * password hash, and new places open only after a success.
 */
#define SETTLE_WAITS_MAX	16

/*
 * Settles a check (stmt_user_settle).  *verdict is one of the static
 * strings below; wait_pid gets the check to wait for when "blocked".
 */
static enum fin_err
pwcheck_settle(struct fin_ctx *ctx, const char *user_id, const char *ok,
    bool admitted, const char *threshold, struct fin_pwcheck *c,
    const char **verdict, char *wait_pid, size_t wait_pid_size)
{
	static const char *const verdicts[] = { "gone", "released", "locked",
	    "blocked", "stale", "right", "locks", "wrong" };
	char		 seconds[24];
	const char	*p[6];
	PGresult	*res;
	enum fin_err	 e;
	size_t		 i;

	snprintf(seconds, sizeof(seconds), "%lld",
	    (long long)ctx->cfg->lockout_seconds);
	p[0] = user_id;
	p[1] = ok;
	p[2] = admitted ? "true" : "false";
	p[3] = threshold;
	p[4] = seconds;
	p[5] = c->hash;
	/* Not resent: a lost answer leaves the place to be found dead. */
	if ((e = Fin_db_exec_once(ctx, &stmt_user_settle, p, &res)) != FIN_OK)
		return e;
	*verdict = NULL;
	if (PQntuples(res) == 1)
		for (i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++)
			if (strcmp(PQgetvalue(res, 0, 0), verdicts[i]) == 0)
				*verdict = verdicts[i];
	if (*verdict == NULL) {
		PQclear(res);
		return FIN_E_INTERNAL_ERROR;
	}
	(void)fin_parse_int64(PQgetvalue(res, 0, 1), 0, INT64_MAX,
	    &c->retry_after);
	snprintf(wait_pid, wait_pid_size, "%s", PQgetvalue(res, 0, 2));
	PQclear(res);
	return FIN_OK;
}

/*
 * Checks password against the stored hash of user_id as one attempt of
 * the lockout.  FIN_OK: right, and the count is reset (c->hash is the hash
 * it matched, c->rehash says to upgrade it).  FIN_E_INVALID_CREDENTIALS:
 * wrong (c->failed: counted; c->locked_now: it locked the account), the
 * account is gone (c->gone), or the password changed meanwhile.
 * FIN_E_ACCOUNT_LOCKED: c->retry_after seconds; the answer was withheld.
 * Any other error: nothing was counted.
 */
enum fin_err
Fin_pwcheck(struct fin_ctx *ctx, const char *user_id, const char *password,
    struct fin_pwcheck *c)
{
	char		 threshold[24], wait_pid[24];
	const char	*p[2], *status, *verdict, *ok;
	PGresult	*res;
	enum fin_err	 e, verified;
	bool		 admitted, right = false;
	int		 waits;

	memset(c, 0, sizeof(*c));
	snprintf(threshold, sizeof(threshold), "%lld",
	    (long long)ctx->cfg->lockout_threshold);
	p[0] = user_id;
	p[1] = threshold;
	if ((e = Fin_db_exec(ctx, &stmt_user_reserve, p, &res)) != FIN_OK)
		return e;
	if (PQntuples(res) != 1) {
		PQclear(res);
		c->gone = true;
		return FIN_E_INVALID_CREDENTIALS;
	}
	status = PQgetvalue(res, 0, 0);
	admitted = strcmp(status, "admitted") == 0;
	c->gone = strcmp(status, "gone") == 0;
	snprintf(c->hash, sizeof(c->hash), "%s", PQgetvalue(res, 0, 2));
	if (strcmp(status, "locked") == 0) {
		/* Locked: no password check at all, so no oracle while locked. */
		(void)fin_parse_int64(PQgetvalue(res, 0, 1), 1, INT64_MAX,
		    &c->retry_after);
		PQclear(res);
		sodium_memzero(c->hash, sizeof(c->hash));
		return FIN_E_ACCOUNT_LOCKED;
	}
	PQclear(res);

	/*
	 * Pending checks hash too: their answer may not wait for a hash of
	 * their own once the checks ahead of them end, and its cost tells
	 * nothing either way.  A deleted account costs the same as well.
	 */
	verified = fin_password_verify(ctx->cfg, c->hash, password, &right,
	    &c->rehash);
	if (c->gone)
		return FIN_E_INVALID_CREDENTIALS;
	ok = verified != FIN_OK ? NULL : right ? "true" : "false";
	for (waits = 0;; waits++) {
		e = pwcheck_settle(ctx, user_id, ok, admitted, threshold, c,
		    &verdict, wait_pid, sizeof(wait_pid));
		if (e != FIN_OK) {
			if (admitted && Fin_db_exec_once(ctx, &stmt_login_release,
			    NULL, &res) == FIN_OK)
				PQclear(res);
			return e;
		}
		/* Once settled, an admitted check holds no place any more. */
		admitted = false;
		if (strcmp(verdict, "blocked") != 0)
			break;
		if (waits == SETTLE_WAITS_MAX)
			return FIN_E_SERVICE_UNAVAILABLE;
		p[0] = wait_pid;
		if ((e = Fin_db_exec(ctx, &stmt_login_wait, p, &res)) != FIN_OK)
			return e;
		PQclear(res);
	}
	if (ok == NULL)
		return verified;
	if (strcmp(verdict, "right") == 0)
		return FIN_OK;
	if (strcmp(verdict, "locked") == 0)
		return FIN_E_ACCOUNT_LOCKED;
	c->gone = strcmp(verdict, "gone") == 0;
	c->locked_now = strcmp(verdict, "locks") == 0;
	c->failed = c->locked_now || strcmp(verdict, "wrong") == 0;
	return FIN_E_INVALID_CREDENTIALS;
}

/*
 * A counted failure: audit it as a login_failure (with where the password
 * was tried, unless at login) and, when it locked the account, the lock.
 */
static enum fin_err
login_failed(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, bool locked, const char *via)
{
	struct json_object *d;
	char		 seconds[24];
	enum fin_err	 e;

	snprintf(seconds, sizeof(seconds), "%lld",
	    (long long)ctx->cfg->lockout_seconds);
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	d = json_object_new_object();
	json_object_object_add(d, "reason",
	    json_object_new_string("wrong_password"));
	if (via != NULL)
		json_object_object_add(d, "via", json_object_new_string(via));
	e = Fin_audit(ctx, client, user_id, "login_failure", d);
	json_object_put(d);
	if (e == FIN_OK && locked) {
		d = json_object_new_object();
		json_object_object_add(d, "seconds",
		    json_object_new_string(seconds));
		e = Fin_audit(ctx, client, user_id, "account_locked", d);
		json_object_put(d);
	}
	if (e != FIN_OK) {
		fin_db_rollback(ctx);
		return e;
	}
	return fin_db_commit(ctx);
}

/*
 * The answer to a check that did not pass, for the caller to return:
 * what a failed login writes and counts, or the seconds of a lock.
 */
enum fin_err
Fin_pwcheck_refused(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *via, enum fin_err e,
    const struct fin_pwcheck *c, int64_t *retry_after)
{
	enum fin_err	 ae;

	if (e == FIN_E_ACCOUNT_LOCKED) {
		*retry_after = c->retry_after > 0 ? c->retry_after : 1;
		fin_metric_inc(FIN_M_LOGIN_LOCKED);
		return e;
	}
	if (e != FIN_E_INVALID_CREDENTIALS)
		return e;
	fin_metric_inc(FIN_M_LOGIN_FAILURE);
	if (c->failed &&
	    (ae = login_failed(ctx, client, user_id, c->locked_now, via)) != FIN_OK)
		return ae;
	return e;
}
