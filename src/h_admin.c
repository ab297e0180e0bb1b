/*
 * Feature flags for the caller, and the admin API: flags, the audit trail
 * of every user, and undoing an account deletion.  The R_ADMIN flag of
 * each route has already checked the role.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

enum fin_err
h_flags(struct request *req)
{
	struct json_object *o;
	enum fin_err	 e;

	if ((e = fin_flags_for_user(req->ctx, req->user_id, &o)) != FIN_OK)
		return e;
	reply_json(req, 200, o);
	return FIN_OK;
}

enum fin_err
h_admin_flags_list(struct request *req)
{
	struct json_object *o;
	enum fin_err	 e;

	if ((e = fin_flags_admin_list(req->ctx, &o)) != FIN_OK)
		return e;
	reply_json(req, 200, o);
	return FIN_OK;
}

enum fin_err
h_admin_flag_put(struct request *req)
{
	const struct fin_value *enabled, *pct, *desc;
	const char	*key = request_param(req, 0);
	struct json_object *o, *flag;
	enum fin_err	 e;

	if (!fin_flag_key_valid(key))
		return field_error(req, "key", "must be 1 to 64 of [a-z0-9_]");
	enabled = request_field(req, "enabled");
	pct = request_field(req, "rollout_percent");
	desc = request_field(req, "description");
	/* Without rollout_percent an existing flag keeps its own (-1). */
	e = fin_flag_set(req->ctx, &req->client, req->user_id, key,
	    enabled->b, pct != NULL ? (int)pct->i : -1,
	    desc != NULL ? desc->s : NULL, &flag);
	/* The body and key were valid: what is left is the flag count. */
	if (e == FIN_E_VALIDATION_ERROR)
		return field_error(req, "key", "is a new flag, and there are "
		    "already 64 (the most a worker holds)");
	if (e != FIN_OK)
		return e;
	o = json_object_new_object();
	json_object_object_add(o, "flag", flag);
	reply_json(req, 200, o);
	return FIN_OK;
}

static bool
valid_action(const char *a)
{
	size_t	 i;

	for (i = 0; a[i] != '\0'; i++)
		if (i >= 64 || !((a[i] >= 'a' && a[i] <= 'z') || a[i] == '_'))
			return false;
	return i > 0;
}

enum fin_err
h_admin_audit(struct request *req)
{
	struct fin_audit_query q = { 0 };
	struct json_object *o;
	enum fin_err	 e;

	if (!request_limit(req, &q.limit))
		return FIN_E_VALIDATION_ERROR;
	q.user_id = request_query(req, "user_id");
	if (q.user_id != NULL && !fin_valid_uuid(q.user_id))
		return field_error(req, "user_id", "must be a UUID");
	q.action = request_query(req, "action");
	if (q.action != NULL && !valid_action(q.action))
		return field_error(req, "action", "must be an audit action name");
	q.cursor = request_query(req, "cursor");
	q.all_users = true;
	if ((e = fin_audit_list(req->ctx, &q, &o)) != FIN_OK)
		return e;
	reply_json(req, 200, o);
	return FIN_OK;
}

enum fin_err
h_admin_user_restore(struct request *req)
{
	struct fin_principal who;
	struct fin_user	 u;
	struct json_object *o;
	enum fin_err	 e;

	e = fin_admin_restore_user(req->ctx, &req->client, req->user_id,
	    request_param(req, 0));
	if (e != FIN_OK)
		return e;
	memset(&who, 0, sizeof(who));
	snprintf(who.user_id, sizeof(who.user_id), "%s", request_param(req, 0));
	if ((e = fin_auth_me(req->ctx, &who, &u)) != FIN_OK)
		return e == FIN_E_UNAUTHORIZED ? FIN_E_NOT_FOUND : e;
	o = json_object_new_object();
	json_object_object_add(o, "user", fin_user_json(&u));
	reply_json(req, 200, o);
	return FIN_OK;
}
