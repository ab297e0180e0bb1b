/*
 * Administration: roles and undoing a soft deletion.  Used by the admin
 * API and by finance-admin.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

/* The old role too, so that a role set again is no change to audit. */
static const struct fin_stmt stmt_set_role = {
	"user_set_role",
	"UPDATE users u SET role = $2, updated_at = now()"
	" FROM (SELECT id, role FROM users WHERE email = $1"
	"  AND deleted_at IS NULL FOR UPDATE) old"
	" WHERE u.id = old.id RETURNING u.id, old.role", 2 };
static const struct fin_stmt stmt_restore = {
	"user_restore",
	"UPDATE users SET deleted_at = NULL, updated_at = now()"
	" WHERE id = $1 AND deleted_at IS NOT NULL RETURNING id", 1 };
static const struct fin_stmt stmt_exists = {
	"user_exists",
	"SELECT deleted_at IS NOT NULL FROM users WHERE id = $1", 1 };

static enum fin_err
audit_role(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *role, const char *by)
{
	struct json_object *d = json_object_new_object();
	enum fin_err	 e;

	json_object_object_add(d, "role", json_object_new_string(role));
	json_object_object_add(d, "by", json_object_new_string(by));
	e = Fin_audit(ctx, client, user_id, "role_changed", d);
	json_object_put(d);
	return e;
}

enum fin_err
fin_admin_set_role(struct fin_ctx *ctx, const struct fin_client *client,
    const char *email, bool admin, bool *changed)
{
	const char	*role = admin ? "admin" : "user";
	const char	*p[2] = { email, role };
	PGresult	*res;
	enum fin_err	 e;
	char		 id[37];

	*changed = false;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	if ((e = Fin_db_exec(ctx, &stmt_set_role, p, &res)) != FIN_OK)
		goto fail;
	if (PQntuples(res) != 1) {
		PQclear(res);
		e = FIN_E_NOT_FOUND;
		goto fail;
	}
	snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
	*changed = strcmp(PQgetvalue(res, 0, 1), role) != 0;
	PQclear(res);
	if (!*changed) {
		fin_db_rollback(ctx);
		return FIN_OK;
	}
	if ((e = audit_role(ctx, client, id, role, "finance-admin")) != FIN_OK)
		goto fail;
	if ((e = fin_db_commit(ctx)) != FIN_OK)
		*changed = false;
	return e;
fail:
	fin_db_rollback(ctx);
	return e;
}

enum fin_err
fin_admin_restore_user(struct fin_ctx *ctx, const struct fin_client *client,
    const char *admin_id, const char *user_id)
{
	const char	*p[1] = { user_id };
	struct json_object *d;
	PGresult	*res;
	enum fin_err	 e;
	bool		 restored;

	if (!fin_valid_uuid(user_id))
		return FIN_E_NOT_FOUND;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	if ((e = Fin_db_exec(ctx, &stmt_restore, p, &res)) != FIN_OK)
		goto fail;
	restored = PQntuples(res) == 1;
	PQclear(res);
	if (!restored) {
		/* Live already is a harmless no-op; unknown is 404. */
		if ((e = Fin_db_exec(ctx, &stmt_exists, p, &res)) != FIN_OK)
			goto fail;
		e = PQntuples(res) == 1 ? FIN_OK : FIN_E_NOT_FOUND;
		PQclear(res);
		fin_db_rollback(ctx);
		return e;
	}
	d = json_object_new_object();
	json_object_object_add(d, "by", json_object_new_string(admin_id));
	e = Fin_audit(ctx, client, user_id, "account_restored", d);
	json_object_put(d);
	if (e != FIN_OK)
		goto fail;
	return fin_db_commit(ctx);
fail:
	fin_db_rollback(ctx);
	return e;
}
