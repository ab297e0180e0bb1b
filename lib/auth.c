/*
 * Accounts and logins: signup, login with lockout, refresh-token rotation
 * with reuse detection, password change and account deletion.  Every
 * change is one SQL transaction together with its audit event.
 *
 * Lockout is counted in PostgreSQL: each attempt first reserves itself
 * with one atomic UPDATE that refuses a locked account, so that however
 * many workers and hosts race, no more than LOCKOUT_THRESHOLD attempts
 * ever reach the password check, and no login waits on another's lock.
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
 * Reserves one attempt before the password is checked: counted as a
 * failure and locking at the threshold, atomically, and only while not
 * locked.  No lock is held while hashing, so a login never waits on
 * another (API.md: a lockout never holds a worker), and however many race,
 * no more than the threshold get to the password check.  A lock that has
 * run out restarts the count; the CASEs all see the old row.
 */
static const struct fin_stmt stmt_user_reserve = {
	"user_login_reserve",
	"UPDATE users SET"
	" failed_logins = CASE WHEN locked_until <= now() THEN 1"
	"  ELSE failed_logins + 1 END,"
	" locked_until = CASE WHEN (CASE WHEN locked_until <= now() THEN 1"
	"  ELSE failed_logins + 1 END) >= $2::int"
	"  THEN now() + $3::bigint * interval '1 second' ELSE NULL END"
	" WHERE id = $1 AND deleted_at IS NULL"
	"   AND (locked_until IS NULL OR locked_until <= now())"
	" RETURNING locked_until IS NOT NULL", 3 };
static const struct fin_stmt stmt_user_locked_for = {
	"user_locked_for",
	"SELECT CASE WHEN locked_until > now()"
	"  THEN ceil(extract(epoch FROM locked_until - now()))::bigint ELSE 1 END"
	" FROM users WHERE id = $1", 1 };
static const struct fin_stmt stmt_user_login_ok = {
	"user_login_ok",
	"UPDATE users SET failed_logins = 0, locked_until = NULL,"
	" password_hash = COALESCE($2, password_hash) WHERE id = $1", 2 };
static const struct fin_stmt stmt_user_by_id = {
	"user_by_id",
	"SELECT " USER_COLS " FROM users WHERE id = $1 AND deleted_at IS NULL", 1 };
static const struct fin_stmt stmt_user_hash = {
	"user_hash",
	"SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL"
	" FOR UPDATE", 1 };
static const struct fin_stmt stmt_user_set_hash = {
	"user_set_hash",
	"UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1", 2 };
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

/* A failed attempt, already counted by its reservation: audit it. */
static enum fin_err
login_failed(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, bool locked)
{
	char		 seconds[24];
	enum fin_err	 e;

	snprintf(seconds, sizeof(seconds), "%lld",
	    (long long)ctx->cfg->lockout_seconds);
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	e = audit_simple(ctx, client, user_id, "login_failure", "reason",
	    "wrong_password");
	if (e == FIN_OK && locked)
		e = audit_simple(ctx, client, user_id, "account_locked",
		    "seconds", seconds);
	if (e != FIN_OK) {
		fin_db_rollback(ctx);
		return e;
	}
	return fin_db_commit(ctx);
}

/* Seconds the account stays locked (at least 1), for Retry-After. */
static int64_t
locked_for(struct fin_ctx *ctx, const char *user_id)
{
	const char	*p[1] = { user_id };
	PGresult	*res;
	int64_t		 v = 1;

	if (Fin_db_exec(ctx, &stmt_user_locked_for, p, &res) == FIN_OK) {
		if (PQntuples(res) == 1)
			(void)fin_parse_int64(PQgetvalue(res, 0, 0), 1, INT64_MAX, &v);
		PQclear(res);
	}
	return v;
}

enum fin_err
fin_auth_login(struct fin_ctx *ctx, const struct fin_client *client,
    const char *email, const char *password, struct fin_user *user,
    struct fin_tokens *tokens, int64_t *retry_after)
{
	char		 newhash[FIN_PASSWORD_HASH_MAX], hash[FIN_PASSWORD_HASH_MAX];
	char		 sid[37], threshold[24], seconds[24];
	const char	*p[3];
	PGresult	*res;
	enum fin_err	 e;
	bool		 ok = false, rehash = false, deleted, locked;
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
		fin_metric_inc(FIN_M_LOGIN_FAILURE);
		return FIN_E_INVALID_CREDENTIALS;
	}
	if (lock_left > 0) {
		/* Locked: no password check at all, so no oracle while locked. */
		*retry_after = lock_left;
		fin_metric_inc(FIN_M_LOGIN_LOCKED);
		return FIN_E_ACCOUNT_LOCKED;
	}
	snprintf(threshold, sizeof(threshold), "%lld",
	    (long long)ctx->cfg->lockout_threshold);
	snprintf(seconds, sizeof(seconds), "%lld",
	    (long long)ctx->cfg->lockout_seconds);
	p[0] = user->id;
	p[1] = threshold;
	p[2] = seconds;
	if ((e = Fin_db_exec(ctx, &stmt_user_reserve, p, &res)) != FIN_OK)
		return e;
	if (PQntuples(res) != 1) {
		/* Another attempt locked it since we looked. */
		PQclear(res);
		*retry_after = locked_for(ctx, user->id);
		fin_metric_inc(FIN_M_LOGIN_LOCKED);
		return FIN_E_ACCOUNT_LOCKED;
	}
	locked = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);

	e = fin_password_verify(ctx->cfg, hash, password, &ok, &rehash);
	sodium_memzero(hash, sizeof(hash));
	if (e != FIN_OK)
		return e;
	if (!ok) {
		fin_metric_inc(FIN_M_LOGIN_FAILURE);
		if ((e = login_failed(ctx, client, user->id, locked)) != FIN_OK)
			return e;
		return FIN_E_INVALID_CREDENTIALS;
	}
	/* Limits changed since this hash was made: upgrade it now. */
	if (rehash && fin_password_hash(ctx->cfg, password, newhash) != FIN_OK)
		rehash = false;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		goto out;
	p[0] = user->id;
	p[1] = rehash ? newhash : NULL;
	/* Success resets the count, and a lock this attempt's reservation set. */
	if ((e = run(ctx, &stmt_user_login_ok, p)) != FIN_OK ||
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

/* Checks the caller's password under the row lock; inside a transaction. */
static enum fin_err
check_password(struct fin_ctx *ctx, const char *user_id, const char *password)
{
	const char	*p[1] = { user_id };
	PGresult	*res;
	enum fin_err	 e;
	bool		 ok = false, rehash;

	if ((e = Fin_db_exec(ctx, &stmt_user_hash, p, &res)) != FIN_OK)
		return e;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return FIN_E_UNAUTHORIZED;
	}
	e = fin_password_verify(ctx->cfg, PQgetvalue(res, 0, 0), password, &ok,
	    &rehash);
	PQclear(res);
	if (e != FIN_OK)
		return e;
	return ok ? FIN_OK : FIN_E_INVALID_CREDENTIALS;
}

enum fin_err
fin_auth_change_password(struct fin_ctx *ctx, const struct fin_client *client,
    const struct fin_principal *pr, const char *current,
    const char *new_password, const char **why)
{
	char		 hash[FIN_PASSWORD_HASH_MAX];
	const char	*p[2];
	enum fin_err	 e;

	if ((e = fin_password_check_policy(new_password, why)) != FIN_OK)
		return e;
	if ((e = fin_password_hash(ctx->cfg, new_password, hash)) != FIN_OK)
		return e;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	if ((e = check_password(ctx, pr->user_id, current)) != FIN_OK)
		goto fail;
	p[0] = pr->user_id;
	p[1] = hash;
	if ((e = run(ctx, &stmt_user_set_hash, p)) != FIN_OK)
		goto fail;
	/* Whoever else knew the old password is logged out everywhere. */
	if ((e = Fin_sessions_revoke_all(ctx, client, pr->user_id,
	    pr->session_id, "password_changed")) != FIN_OK)
		goto fail;
	if ((e = audit_simple(ctx, client, pr->user_id, "password_changed",
	    NULL, NULL)) != FIN_OK)
		goto fail;
	sodium_memzero(hash, sizeof(hash));
	return fin_db_commit(ctx);
fail:
	sodium_memzero(hash, sizeof(hash));
	fin_db_rollback(ctx);
	return e;
}

enum fin_err
fin_auth_delete_account(struct fin_ctx *ctx, const struct fin_client *client,
    const struct fin_principal *pr, const char *password)
{
	const char	*p[1] = { pr->user_id };
	enum fin_err	 e;

	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	if ((e = check_password(ctx, pr->user_id, password)) != FIN_OK)
		goto fail;
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
