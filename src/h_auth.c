/*
 * /auth: signup, login, refresh, logout, me, password, account deletion.
 * Each handler reads the validated body, calls one fin_auth_* function and
 * writes the JSON of API.md §Auth.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

static const char *
field(struct request *req, const char *name)
{
	const struct fin_value *v = request_field(req, name);

	return v != NULL ? v->s : "";
}

/* A password that fails the length policy is a field error, not a body one. */
static enum fin_err
policy_error(struct request *req, enum fin_err e, const char *name,
    const char *why)
{
	struct json_object *extra, *fields;

	if (e != FIN_E_VALIDATION_ERROR && e != FIN_E_WEAK_PASSWORD)
		return e;
	extra = fin_arena_json(req->arena, json_object_new_object());
	if (extra == NULL)
		return FIN_E_INTERNAL_ERROR;
	fields = json_object_new_object();
	json_object_object_add(fields, name, json_object_new_string(
	    why != NULL ? why : fin_err_message(e)));
	json_object_object_add(extra, "fields", fields);
	http_error(req, e, extra, NULL);
	return e;
}

static void
reply_user(struct request *req, int status, const struct fin_user *u)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "user", fin_user_json(u));
	reply_json(req, status, o);
}

static void
reply_tokens(struct request *req, const struct fin_user *u,
    struct fin_tokens *t)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "user", fin_user_json(u));
	json_object_object_add(o, "access_token",
	    json_object_new_string(t->access_token));
	json_object_object_add(o, "refresh_token",
	    json_object_new_string(t->refresh_token));
	json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
	json_object_object_add(o, "expires_in", json_object_new_int64(t->expires_in));
	reply_json(req, 200, o);
	/* The JSON holds its own copies; ours go now. */
	sodium_memzero(t, sizeof(*t));
}

enum fin_err
h_auth_signup(struct request *req)
{
	struct fin_user	 u;
	const char	*why = NULL;
	enum fin_err	 e;

	e = fin_auth_signup(req->ctx, &req->client, field(req, "email"),
	    field(req, "name"), field(req, "password"), &u, &why);
	if (e != FIN_OK)
		return policy_error(req, e, "password", why);
	reply_user(req, 201, &u);
	return FIN_OK;
}

/*
 * 423 for every endpoint that checks the password (login, password change,
 * account deletion): API.md's exact sentence with the minutes left,
 * rounded up, and Retry-After in seconds.
 */
static enum fin_err
account_locked(struct request *req, int64_t retry_after)
{
	int64_t		 minutes;
	char		 msg[160], ra[24];

	minutes = (retry_after + 59) / 60;
	snprintf(msg, sizeof(msg), "Account locked due to too many failed "
	    "login attempts. Try again in %lld minute%s.",
	    (long long)minutes, minutes == 1 ? "" : "s");
	snprintf(ra, sizeof(ra), "%lld", (long long)retry_after);
	resp_header(req, "Retry-After", fin_arena_strdup(req->arena, ra));
	http_error(req, FIN_E_ACCOUNT_LOCKED, NULL,
	    fin_arena_strdup(req->arena, msg));
	return FIN_E_ACCOUNT_LOCKED;
}

enum fin_err
h_auth_login(struct request *req)
{
	struct fin_user	 u;
	struct fin_tokens t;
	int64_t		 retry_after = 0;
	enum fin_err	 e;

	e = fin_auth_login(req->ctx, &req->client, field(req, "email"),
	    field(req, "password"), &u, &t, &retry_after);
	if (e == FIN_E_ACCOUNT_LOCKED)
		return account_locked(req, retry_after);
	if (e != FIN_OK)
		return e;
	reply_tokens(req, &u, &t);
	return FIN_OK;
}

enum fin_err
h_auth_refresh(struct request *req)
{
	struct fin_user	 u;
	struct fin_tokens t;
	enum fin_err	 e;

	e = fin_auth_refresh(req->ctx, &req->client, field(req, "refresh_token"),
	    &u, &t);
	if (e != FIN_OK)
		return e;
	reply_tokens(req, &u, &t);
	return FIN_OK;
}

enum fin_err
h_auth_logout(struct request *req)
{
	enum fin_err	 e;

	e = fin_auth_logout(req->ctx, &req->client, &req->principal);
	if (e != FIN_OK)
		return e;
	reply_empty(req, 204);
	return FIN_OK;
}

enum fin_err
h_auth_me(struct request *req)
{
	struct fin_user	 u;
	enum fin_err	 e;

	e = fin_auth_me(req->ctx, &req->principal, &u);
	if (e != FIN_OK)
		return e;
	reply_user(req, 200, &u);
	return FIN_OK;
}

enum fin_err
h_auth_password(struct request *req)
{
	const char	*why = NULL;
	int64_t		 retry_after = 0;
	enum fin_err	 e;

	e = fin_auth_change_password(req->ctx, &req->client, &req->principal,
	    field(req, "current_password"), field(req, "new_password"), &why,
	    &retry_after);
	if (e == FIN_E_ACCOUNT_LOCKED)
		return account_locked(req, retry_after);
	if (e != FIN_OK)
		return policy_error(req, e, "new_password", why);
	reply_empty(req, 204);
	return FIN_OK;
}

enum fin_err
h_auth_delete_me(struct request *req)
{
	int64_t		 retry_after = 0;
	enum fin_err	 e;

	e = fin_auth_delete_account(req->ctx, &req->client, &req->principal,
	    field(req, "password"), &retry_after);
	if (e == FIN_E_ACCOUNT_LOCKED)
		return account_locked(req, retry_after);
	if (e != FIN_OK)
		return e;
	reply_empty(req, 204);
	return FIN_OK;
}
