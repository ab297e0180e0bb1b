/*
 * Accounts and logins: signup, login with lockout, refresh-token rotation
 * with reuse detection, password change and account deletion.  Every
 * change is one SQL transaction together with its audit event.  Every
 * check of a password goes through the lockout (lib/lockout.c).
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
 * Holds the user row, as it was when the password was checked, until the
 * new session commits: a password change or a deletion that commits
 * meanwhile would not see the session it has to revoke.  Not FOR SHARE:
 * two logins that both rehash would deadlock upgrading it.
 */
static const struct fin_stmt stmt_user_login_hold = {
	"user_login_hold",
	"SELECT 1 FROM users WHERE id = $1 AND password_hash = $2"
	" AND deleted_at IS NULL FOR NO KEY UPDATE", 2 };
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

enum fin_err
fin_auth_login(struct fin_ctx *ctx, const struct fin_client *client,
    const char *email, const char *password, struct fin_user *user,
    struct fin_tokens *tokens, int64_t *retry_after)
{
	char		 newhash[FIN_PASSWORD_HASH_MAX], hash[FIN_PASSWORD_HASH_MAX];
	char		 sid[37];
	const char	*p[3];
	struct fin_pwcheck	 c;
	PGresult	*res;
	enum fin_err	 e;
	bool		 ok = false, rehash = false, deleted, held;
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
	e = Fin_pwcheck(ctx, user->id, password, &c);
	if (e != FIN_OK) {
		/* Deleted since it was read: 401 as above, never 423. */
		e = Fin_pwcheck_refused(ctx, client, user->id, NULL, e, &c,
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
	p[1] = c.hash;
	if ((e = Fin_db_exec(ctx, &stmt_user_login_hold, p, &res)) != FIN_OK) {
		fin_db_rollback(ctx);
		goto out;
	}
	held = PQntuples(res) == 1;
	PQclear(res);
	if (!held) {
		/* Changed or deleted since the check: it no longer holds. */
		fin_db_rollback(ctx);
		e = FIN_E_INVALID_CREDENTIALS;
		goto out;
	}
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
    struct fin_pwcheck *c, int64_t *retry_after)
{
	enum fin_err	 e;

	*retry_after = 0;
	if ((e = Fin_pwcheck(ctx, pr->user_id, password, c)) == FIN_OK)
		return FIN_OK;
	e = Fin_pwcheck_refused(ctx, client, pr->user_id, via, e, c, retry_after);
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
	struct fin_pwcheck	 c;
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
	struct fin_pwcheck	 c;
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
