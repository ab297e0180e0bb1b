/*
 * Accounts and logins: signup, login with lockout, refresh-token rotation
 * with reuse detection, password change and account deletion.  Every
 * change is one SQL transaction together with its audit event.
 *
 * Lockout is counted in PostgreSQL, and every check of a user's password
 * counts (login, POST /auth/password, DELETE /auth/me).  Two numbers make
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

#define USER_COLS "id, email, name, role, " SQL_TS("created_at")

static const struct fin_stmt stmt_user_insert = {
	"user_insert",
	"INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3)"
	" RETURNING " USER_COLS, 3 };
static const struct fin_stmt stmt_user_for_login = {
	"user_for_login",
	"SELECT " USER_COLS ", password_hash, deleted_at IS NOT NULL,"
	" CASE WHEN locked_until > now()"
	"  THEN ceil(extract(epoch FROM locked_until - now()))::bigint"
	"  ELSE 0 END"
	" FROM users WHERE email = $1", 1 };
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
/* A hash made with older limits, replaced only if it is still the one. */
static const struct fin_stmt stmt_user_rehash = {
	"user_rehash",
	"UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
	3 };
static const struct fin_stmt stmt_user_by_id = {
	"user_by_id",
	"SELECT " USER_COLS " FROM users WHERE id = $1 AND deleted_at IS NULL", 1 };
/* Only over the hash that was checked: a concurrent change wins. */
static const struct fin_stmt stmt_user_set_hash = {
	"user_set_hash",
	"UPDATE users SET password_hash = $2, updated_at = now()"
	" WHERE id = $1 AND deleted_at IS NULL AND password_hash = $3"
	" RETURNING id", 3 };
static const struct fin_stmt stmt_user_delete = {
	"user_soft_delete",
	"UPDATE users SET deleted_at = now(), updated_at = now()"
	" WHERE id = $1 AND deleted_at IS NULL", 1 };
static const struct fin_stmt stmt_refresh_lookup = {
	"refresh_lookup",
	"SELECT r.session_id, r.rotated_at IS NOT NULL, r.expires_at <= now(),"
	" s.revoked_at IS NOT NULL, s.user_id, u.deleted_at IS NOT NULL"
	" FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id"
	" JOIN users u ON u.id = s.user_id"
	" WHERE r.token_hash = $1::bytea FOR UPDATE OF r, s", 1 };
static const struct fin_stmt stmt_refresh_rotate = {
	"refresh_rotate",
	"UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1::bytea", 1 };
static const struct fin_stmt stmt_session_revoke_one = {
	"session_revoke_reuse",
	"UPDATE sessions SET revoked_at = now(), revoked_reason = $2"
	" WHERE id = $1 AND revoked_at IS NULL", 2 };
static const struct fin_stmt stmt_session_used = {
	"session_used",
	"UPDATE sessions SET last_used_at = now(), ip = $2 WHERE id = $1", 2 };

static void
user_from_row(PGresult *res, int row, struct fin_user *u)
{
	snprintf(u->id, sizeof(u->id), "%s", PQgetvalue(res, row, 0));
	snprintf(u->email, sizeof(u->email), "%s", PQgetvalue(res, row, 1));
	snprintf(u->name, sizeof(u->name), "%s", PQgetvalue(res, row, 2));
	snprintf(u->role, sizeof(u->role), "%s", PQgetvalue(res, row, 3));
	snprintf(u->created_at, sizeof(u->created_at), "%s", PQgetvalue(res, row, 4));
}

struct json_object *
fin_user_json(const struct fin_user *u)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(u->id));
	json_object_object_add(o, "email", json_object_new_string(u->email));
	json_object_object_add(o, "name", json_object_new_string(u->name));
	json_object_object_add(o, "role", json_object_new_string(u->role));
	json_object_object_add(o, "created_at", json_object_new_string(u->created_at));
	return o;
}

/* Runs one statement and throws the result away. */
static enum fin_err
run(struct fin_ctx *ctx, const struct fin_stmt *st, const char *const *p)
{
	PGresult	*res;
	enum fin_err	 e;

	e = Fin_db_exec(ctx, st, p, &res);
	PQclear(res);
	return e;
}

static enum fin_err
audit_simple(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *action, const char *key, const char *value)
{
	struct json_object *d = json_object_new_object();
	enum fin_err	 e;

	if (key != NULL)
		json_object_object_add(d, key, json_object_new_string(value));
	e = Fin_audit(ctx, client, user_id, action, d);
	json_object_put(d);
	return e;
}

/* ------------------------------------------------------------------ */
/* Signup                                                              */
/* ------------------------------------------------------------------ */

enum fin_err
fin_auth_signup(struct fin_ctx *ctx, const struct fin_client *client,
    const char *email, const char *name, const char *password,
    struct fin_user *out, const char **why)
{
	char		 hash[FIN_PASSWORD_HASH_MAX];
	const char	*p[3];
	PGresult	*res;
	enum fin_err	 e;

	e = fin_password_check_policy(password, why);
	if (e != FIN_OK)
		return e;
	e = fin_password_hash(ctx->cfg, password, hash);
	if (e != FIN_OK)
		return e;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	p[0] = email;
	p[1] = name;
	p[2] = hash;
	e = Fin_db_exec(ctx, &stmt_user_insert, p, &res);
	if (e != FIN_OK) {
		fin_db_rollback(ctx);
		return Fin_db_unique_violation(ctx) ? FIN_E_EMAIL_TAKEN : e;
	}
	user_from_row(res, 0, out);
	PQclear(res);
	e = audit_simple(ctx, client, out->id, "signup", NULL, NULL);
	if (e != FIN_OK) {
		fin_db_rollback(ctx);
		return e;
	}
	return fin_db_commit(ctx);
}

/* ------------------------------------------------------------------ */
/* Login                                                               */
/* ------------------------------------------------------------------ */

/*
 * One check of a user's password, counted by the lockout (see the top of
 * this file).  SETTLE_WAITS_MAX bounds how often a check with no place
 * waits for one in flight; each wait ends with that check, within one
 * password hash, and new places open only after a success.
 */
#define SETTLE_WAITS_MAX	16

struct pwcheck {
	char	 hash[FIN_PASSWORD_HASH_MAX];	/* the stored hash checked */
	int64_t	 retry_after;	/* FIN_E_ACCOUNT_LOCKED: seconds left */
	bool	 failed;	/* a wrong password, counted */
	bool	 locked_now;	/* ... and it locked the account */
	bool	 gone;		/* the account is deleted */
	bool	 rehash;	/* right, but hashed with other limits */
};

/*
 * Settles a check (stmt_user_settle).  *verdict is one of the static
 * strings below; wait_pid gets the check to wait for when "blocked".
 */
static enum fin_err
pwcheck_settle(struct fin_ctx *ctx, const char *user_id, const char *ok,
    bool admitted, struct pwcheck *c, const char **verdict, char *wait_pid,
    size_t wait_pid_size)
{
	static const char *const verdicts[] = { "gone", "released", "locked",
	    "blocked", "stale", "right", "locks", "wrong" };
	char		 threshold[24], seconds[24];
	const char	*p[6];
	PGresult	*res;
	enum fin_err	 e;
	size_t		 i;

	snprintf(threshold, sizeof(threshold), "%lld",
	    (long long)ctx->cfg->lockout_threshold);
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
static enum fin_err
pwcheck(struct fin_ctx *ctx, const char *user_id, const char *password,
    struct pwcheck *c)
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
		e = pwcheck_settle(ctx, user_id, ok, admitted, c, &verdict,
		    wait_pid, sizeof(wait_pid));
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
	if (e == FIN_OK && locked)
		e = audit_simple(ctx, client, user_id, "account_locked",
		    "seconds", seconds);
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
static enum fin_err
pwcheck_refused(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *via, enum fin_err e,
    const struct pwcheck *c, int64_t *retry_after)
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

enum fin_err
fin_auth_login(struct fin_ctx *ctx, const struct fin_client *client,
    const char *email, const char *password, struct fin_user *user,
    struct fin_tokens *tokens, int64_t *retry_after)
{
	char		 newhash[FIN_PASSWORD_HASH_MAX], hash[FIN_PASSWORD_HASH_MAX];
	char		 sid[37];
	const char	*p[3];
	struct pwcheck	 c;
	PGresult	*res;
	enum fin_err	 e;
	bool		 ok = false, rehash = false, deleted;
	int64_t		 lock_left = 0;

	*retry_after = 0;
	p[0] = email;
	if ((e = Fin_db_exec(ctx, &stmt_user_for_login, p, &res)) != FIN_OK)
		return e;
	if (PQntuples(res) == 0) {
		PQclear(res);
		/* Same cost as a wrong password: no email enumeration by timing. */
		fin_password_verify_dummy(ctx->cfg, password);
		fin_metric_inc(FIN_M_LOGIN_FAILURE);
		if ((e = fin_db_begin(ctx)) != FIN_OK)
			return e;
		e = audit_simple(ctx, client, NULL, "login_failure", "reason",
		    "unknown_email");
		if (e != FIN_OK) {
			fin_db_rollback(ctx);
			return e;
		}
		if ((e = fin_db_commit(ctx)) != FIN_OK)
			return e;
		return FIN_E_INVALID_CREDENTIALS;
	}
	user_from_row(res, 0, user);
	snprintf(hash, sizeof(hash), "%s", PQgetvalue(res, 0, 5));
	deleted = strcmp(PQgetvalue(res, 0, 6), "t") == 0;
	(void)fin_parse_int64(PQgetvalue(res, 0, 7), 0, INT64_MAX, &lock_left);
	PQclear(res);
	if (deleted) {
		/* A deleted account answers like a wrong password, in its time. */
		if (fin_password_verify(ctx->cfg, hash, password, &ok,
		    &rehash) != FIN_OK)
			fin_log(FIN_LOG_WARN, "login", "could not verify a deleted "
			    "account's hash");
		sodium_memzero(hash, sizeof(hash));
		fin_metric_inc(FIN_M_LOGIN_FAILURE);
		return FIN_E_INVALID_CREDENTIALS;
	}
	sodium_memzero(hash, sizeof(hash));
	if (lock_left > 0) {
		/* Locked: no password check at all, so no oracle while locked. */
		*retry_after = lock_left;
		fin_metric_inc(FIN_M_LOGIN_LOCKED);
		return FIN_E_ACCOUNT_LOCKED;
	}
	e = pwcheck(ctx, user->id, password, &c);
	if (e != FIN_OK) {
		/* Deleted since it was read: 401 as above, never 423. */
		e = pwcheck_refused(ctx, client, user->id, NULL, e, &c,
		    retry_after);
		sodium_memzero(&c, sizeof(c));
		return e;
	}
	/* Limits changed since this hash was made: upgrade it now. */
	rehash = c.rehash &&
	    fin_password_hash(ctx->cfg, password, newhash) == FIN_OK;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		goto out;
	p[0] = user->id;
	p[1] = newhash;
	p[2] = c.hash;
	if ((rehash && (e = run(ctx, &stmt_user_rehash, p)) != FIN_OK) ||
	    (e = Fin_session_start(ctx, client, user->id, sid, tokens)) != FIN_OK ||
	    (e = audit_simple(ctx, client, user->id, "login_success",
	    "session_id", sid)) != FIN_OK) {
		fin_db_rollback(ctx);
		goto out;
	}
	if ((e = fin_db_commit(ctx)) == FIN_OK)
		fin_metric_inc(FIN_M_LOGIN_SUCCESS);
out:
	sodium_memzero(newhash, sizeof(newhash));
	sodium_memzero(&c, sizeof(c));
	return e;
}

/* ------------------------------------------------------------------ */
/* Refresh                                                             */
/* ------------------------------------------------------------------ */

enum fin_err
fin_auth_refresh(struct fin_ctx *ctx, const struct fin_client *client,
    const char *refresh_token, struct fin_user *user, struct fin_tokens *tokens)
{
	char		 hash[80], sid[37], uid[37];
	const char	*p[2];
	PGresult	*res;
	enum fin_err	 e;
	bool		 rotated, expired, revoked, deleted;

	if (strlen(refresh_token) >= FIN_REFRESH_TOKEN_MAX ||
	    !Fin_refresh_hash(ctx->cfg, refresh_token, hash))
		return FIN_E_INVALID_REFRESH_TOKEN;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	p[0] = hash;
	/* FOR UPDATE: of two concurrent refreshes, the second sees rotated_at. */
	if ((e = Fin_db_exec(ctx, &stmt_refresh_lookup, p, &res)) != FIN_OK)
		goto fail;
	if (PQntuples(res) == 0) {
		PQclear(res);
		fin_db_rollback(ctx);
		return FIN_E_INVALID_REFRESH_TOKEN;
	}
	snprintf(sid, sizeof(sid), "%s", PQgetvalue(res, 0, 0));
	rotated = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	expired = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	revoked = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	snprintf(uid, sizeof(uid), "%s", PQgetvalue(res, 0, 4));
	deleted = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
	PQclear(res);
	if (rotated) {
		/* A rotated token came back: theft.  Kill the whole session. */
		p[0] = sid;
		p[1] = "refresh_token_reuse";
		if (!revoked && (e = run(ctx, &stmt_session_revoke_one, p)) != FIN_OK)
			goto fail;
		if ((e = audit_simple(ctx, client, uid, "refresh_token_reuse",
		    "session_id", sid)) != FIN_OK)
			goto fail;
		if ((e = fin_db_commit(ctx)) != FIN_OK)
			return e;
		Fin_session_unmirror(ctx, sid);
		return FIN_E_REFRESH_TOKEN_REUSED;
	}
	if (expired || revoked || deleted) {
		fin_db_rollback(ctx);
		return FIN_E_INVALID_REFRESH_TOKEN;
	}
	p[0] = hash;
	if ((e = run(ctx, &stmt_refresh_rotate, p)) != FIN_OK)
		goto fail;
	p[0] = sid;
	p[1] = client->ip;
	if ((e = run(ctx, &stmt_session_used, p)) != FIN_OK)
		goto fail;
	if ((e = Fin_refresh_issue(ctx, sid, tokens->refresh_token)) != FIN_OK)
		goto fail;
	if ((e = Fin_access_token(ctx, uid, sid, tokens)) != FIN_OK)
		goto fail;
	p[0] = uid;
	if ((e = Fin_db_exec(ctx, &stmt_user_by_id, p, &res)) != FIN_OK)
		goto fail;
	if (PQntuples(res) != 1) {
		PQclear(res);
		e = FIN_E_INVALID_REFRESH_TOKEN;
		goto fail;
	}
	user_from_row(res, 0, user);
	PQclear(res);
	if ((e = audit_simple(ctx, client, uid, "token_refresh", "session_id",
	    sid)) != FIN_OK)
		goto fail;
	return fin_db_commit(ctx);
fail:
	fin_db_rollback(ctx);
	return e;
}

/* ------------------------------------------------------------------ */
/* The signed-in user                                                  */
/* ------------------------------------------------------------------ */

enum fin_err
fin_auth_me(struct fin_ctx *ctx, const struct fin_principal *pr,
    struct fin_user *out)
{
	const char	*p[1] = { pr->user_id };
	PGresult	*res;
	enum fin_err	 e;

	if ((e = Fin_db_exec(ctx, &stmt_user_by_id, p, &res)) != FIN_OK)
		return e;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return FIN_E_UNAUTHORIZED;
	}
	user_from_row(res, 0, out);
	PQclear(res);
	return FIN_OK;
}

enum fin_err
fin_auth_logout(struct fin_ctx *ctx, const struct fin_client *client,
    const struct fin_principal *pr)
{
	const char	*p[2] = { pr->session_id, "logout" };
	enum fin_err	 e;

	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	if ((e = run(ctx, &stmt_session_revoke_one, p)) != FIN_OK ||
	    (e = audit_simple(ctx, client, pr->user_id, "logout", "session_id",
	    pr->session_id)) != FIN_OK) {
		fin_db_rollback(ctx);
		return e;
	}
	if ((e = fin_db_commit(ctx)) != FIN_OK)
		return e;
	Fin_session_unmirror(ctx, pr->session_id);
	return FIN_OK;
}

/*
 * POST /auth/password and DELETE /auth/me check the password as a login
 * does: a stolen access token must not buy guesses that login would have
 * locked out.  The check runs before the SQL transaction, so no row lock
 * is held while hashing.  FIN_OK with *c filled; otherwise the answer,
 * already counted and audited, and *c wiped.  An account deleted since the
 * token was issued is 401 UNAUTHORIZED, as for any other request of it.
 */
static enum fin_err
check_own_password(struct fin_ctx *ctx, const struct fin_client *client,
    const struct fin_principal *pr, const char *password, const char *via,
    struct pwcheck *c, int64_t *retry_after)
{
	enum fin_err	 e;

	*retry_after = 0;
	if ((e = pwcheck(ctx, pr->user_id, password, c)) == FIN_OK)
		return FIN_OK;
	e = pwcheck_refused(ctx, client, pr->user_id, via, e, c, retry_after);
	if (c->gone)
		e = FIN_E_UNAUTHORIZED;
	sodium_memzero(c, sizeof(*c));
	return e;
}

enum fin_err
fin_auth_change_password(struct fin_ctx *ctx, const struct fin_client *client,
    const struct fin_principal *pr, const char *current,
    const char *new_password, const char **why, int64_t *retry_after)
{
	char		 hash[FIN_PASSWORD_HASH_MAX];
	const char	*p[3];
	struct pwcheck	 c;
	PGresult	*res;
	enum fin_err	 e;

	*retry_after = 0;
	if ((e = fin_password_check_policy(new_password, why)) != FIN_OK)
		return e;
	if ((e = check_own_password(ctx, client, pr, current,
	    "password_change", &c, retry_after)) != FIN_OK)
		return e;
	if ((e = fin_password_hash(ctx->cfg, new_password, hash)) != FIN_OK)
		goto out;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		goto out;
	p[0] = pr->user_id;
	p[1] = hash;
	p[2] = c.hash;
	if ((e = Fin_db_exec(ctx, &stmt_user_set_hash, p, &res)) != FIN_OK)
		goto fail;
	if (PQntuples(res) != 1) {
		/* Changed (or deleted) since the check: it no longer holds. */
		PQclear(res);
		e = FIN_E_INVALID_CREDENTIALS;
		goto fail;
	}
	PQclear(res);
	/* Whoever else knew the old password is logged out everywhere. */
	if ((e = Fin_sessions_revoke_all(ctx, client, pr->user_id,
	    pr->session_id, "password_changed")) != FIN_OK)
		goto fail;
	if ((e = audit_simple(ctx, client, pr->user_id, "password_changed",
	    NULL, NULL)) != FIN_OK)
		goto fail;
	e = fin_db_commit(ctx);
	goto out;
fail:
	fin_db_rollback(ctx);
out:
	sodium_memzero(hash, sizeof(hash));
	sodium_memzero(&c, sizeof(c));
	return e;
}

enum fin_err
fin_auth_delete_account(struct fin_ctx *ctx, const struct fin_client *client,
    const struct fin_principal *pr, const char *password,
    int64_t *retry_after)
{
	const char	*p[1] = { pr->user_id };
	struct pwcheck	 c;
	enum fin_err	 e;

	if ((e = check_own_password(ctx, client, pr, password,
	    "account_deletion", &c, retry_after)) != FIN_OK)
		return e;
	sodium_memzero(&c, sizeof(c));
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	if ((e = run(ctx, &stmt_user_delete, p)) != FIN_OK)
		goto fail;
	if ((e = Fin_sessions_revoke_all(ctx, client, pr->user_id, NULL,
	    "account_deleted")) != FIN_OK)
		goto fail;
	if ((e = audit_simple(ctx, client, pr->user_id, "account_deleted",
	    NULL, NULL)) != FIN_OK)
		goto fail;
	return fin_db_commit(ctx);
fail:
	fin_db_rollback(ctx);
	return e;
}
