/*
 * Feature flags: a table in PostgreSQL, read by each worker at most once
 * a second (FLAG_REFRESH_MS), so a change reaches every worker within a
 * second without a database query per request.  Turning a flag off is the
 * instant rollback.  A rollout percentage is decided by a hash of the flag
 * key and the user id: stable for a user, and raising the percentage never
 * turns a user off (the user's bucket does not move).  Unknown flags are
 * off.  A worker holds at most FIN_FLAGS_MAX flags, so the API creates no
 * more than that.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

#define FLAG_REFRESH_MS	1000

static const struct fin_stmt stmt_all = {
	"flags_all",
	"SELECT key, enabled, rollout_percent FROM feature_flags ORDER BY key", 0 };
static const struct fin_stmt stmt_admin_list = {
	"flags_admin_list",
	"SELECT key, enabled, rollout_percent, description, "
	SQL_TS("updated_at") ", updated_by FROM feature_flags ORDER BY key", 0 };
static const struct fin_stmt stmt_get_for_update = {
	"flag_get_for_update",
	"SELECT key, enabled, rollout_percent, description, "
	SQL_TS("updated_at") ", updated_by FROM feature_flags WHERE key = $1"
	" FOR UPDATE", 1 };
static const struct fin_stmt stmt_lock = {
	"flags_lock",
	"LOCK TABLE feature_flags IN SHARE ROW EXCLUSIVE MODE", 0 };
static const struct fin_stmt stmt_count = {
	"flags_count", "SELECT count(*) FROM feature_flags", 0 };
static const struct fin_stmt stmt_upsert = {
	"flag_upsert",
	"INSERT INTO feature_flags (key, enabled, rollout_percent, description,"
	" updated_by) VALUES ($1, $2::boolean, COALESCE($3::int, 100),"
	" COALESCE($4, ''), $5)"
	" ON CONFLICT (key) DO UPDATE SET enabled = EXCLUDED.enabled,"
	"  rollout_percent = COALESCE($3::int, feature_flags.rollout_percent),"
	"  description = COALESCE($4, feature_flags.description),"
	"  updated_at = now(), updated_by = EXCLUDED.updated_by"
	" RETURNING key, enabled, rollout_percent, description, "
	SQL_TS("updated_at") ", updated_by", 5 };

bool
fin_flag_key_valid(const char *key)
{
	size_t	 i;

	if (key == NULL || key[0] == '\0')
		return false;
	for (i = 0; key[i] != '\0'; i++)
		if (i >= FIN_FLAG_KEY_MAX - 1 || !((key[i] >= 'a' && key[i] <= 'z') ||
		    (key[i] >= '0' && key[i] <= '9') || key[i] == '_'))
			return false;
	return true;
}

/* Reloads the worker's copy when it is older than FLAG_REFRESH_MS. */
static enum fin_err
refresh(struct fin_ctx *ctx)
{
	PGresult	*res;
	enum fin_err	 e;
	int		 i, n;
	int64_t		 pct;

	if (ctx->flags_loaded_ms != 0 &&
	    fin_now_ms() - ctx->flags_loaded_ms < FLAG_REFRESH_MS)
		return FIN_OK;
	if ((e = Fin_db_exec(ctx, &stmt_all, NULL, &res)) != FIN_OK)
		return e;
	n = PQntuples(res);
	/* Once per count, not every second. */
	if (n > FIN_FLAGS_MAX && n != ctx->flags_warned_count) {
		fin_log(FIN_LOG_WARN, "flags_truncated", "%d feature flags, "
		    "this worker holds the first %d: the others read as off",
		    n, FIN_FLAGS_MAX);
		ctx->flags_warned_count = n;
	}
	ctx->nflags = 0;
	for (i = 0; i < n && ctx->nflags < FIN_FLAGS_MAX; i++) {
		struct fin_flag_state *f = &ctx->flags[ctx->nflags++];

		snprintf(f->key, sizeof(f->key), "%s", PQgetvalue(res, i, 0));
		f->enabled = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		pct = 0;
		(void)fin_parse_int64(PQgetvalue(res, i, 2), 0, 100, &pct);
		f->rollout_percent = (int)pct;
	}
	PQclear(res);
	ctx->flags_loaded_ms = fin_now_ms();
	return FIN_OK;
}

/* The user's bucket for a flag, 0..99: SHA-256 of "key:user_id". */
int
fin_flag_bucket(const char *key, const char *user_id)
{
	unsigned char	 md[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state st;
	uint32_t	 v;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)key, strlen(key));
	crypto_hash_sha256_update(&st, (const unsigned char *)":", 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)user_id,
	    strlen(user_id));
	crypto_hash_sha256_final(&st, md);
	v = (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 |
	    md[3];
	return (int)(v % 100);
}

static bool
evaluate(const struct fin_flag_state *f, const char *user_id)
{
	if (!f->enabled || f->rollout_percent <= 0)
		return false;
	if (f->rollout_percent >= 100)
		return true;
	return user_id != NULL &&
	    fin_flag_bucket(f->key, user_id) < f->rollout_percent;
}

bool
fin_flag_enabled(struct fin_ctx *ctx, const char *key, const char *user_id)
{
	size_t	 i;

	/* Without the database, keep the last copy: flags are not security. */
	if (refresh(ctx) != FIN_OK && ctx->flags_loaded_ms == 0)
		return false;
	for (i = 0; i < ctx->nflags; i++)
		if (strcmp(ctx->flags[i].key, key) == 0)
			return evaluate(&ctx->flags[i], user_id);
	return false;
}

enum fin_err
fin_flags_for_user(struct fin_ctx *ctx, const char *user_id,
    struct json_object **out)
{
	struct json_object *flags;
	enum fin_err	 e;
	size_t		 i;

	*out = NULL;
	if ((e = refresh(ctx)) != FIN_OK && ctx->flags_loaded_ms == 0)
		return e;
	flags = json_object_new_object();
	for (i = 0; i < ctx->nflags; i++)
		json_object_object_add(flags, ctx->flags[i].key,
		    json_object_new_boolean(evaluate(&ctx->flags[i], user_id)));
	*out = json_object_new_object();
	json_object_object_add(*out, "flags", flags);
	return FIN_OK;
}

static struct json_object *
flag_json(PGresult *res, int i)
{
	struct json_object *o = json_object_new_object();
	int64_t		 pct = 0;

	(void)fin_parse_int64(PQgetvalue(res, i, 2), 0, 100, &pct);
	json_object_object_add(o, "key", json_object_new_string(PQgetvalue(res, i, 0)));
	json_object_object_add(o, "enabled", json_object_new_boolean(
	    strcmp(PQgetvalue(res, i, 1), "t") == 0));
	json_object_object_add(o, "rollout_percent", json_object_new_int64(pct));
	json_object_object_add(o, "description", json_object_new_string(PQgetvalue(res, i, 3)));
	json_object_object_add(o, "updated_at", json_object_new_string(PQgetvalue(res, i, 4)));
	json_object_object_add(o, "updated_by", PQgetisnull(res, i, 5) ? NULL :
	    json_object_new_string(PQgetvalue(res, i, 5)));
	return o;
}

enum fin_err
fin_flags_admin_list(struct fin_ctx *ctx, struct json_object **out)
{
	struct json_object *data;
	PGresult	*res;
	enum fin_err	 e;
	int		 i;

	*out = NULL;
	if ((e = Fin_db_exec(ctx, &stmt_admin_list, NULL, &res)) != FIN_OK)
		return e;
	data = json_object_new_array();
	for (i = 0; i < PQntuples(res); i++)
		json_object_array_add(data, flag_json(res, i));
	PQclear(res);
	*out = json_object_new_object();
	json_object_object_add(*out, "data", data);
	return FIN_OK;
}

/*
 * rollout_percent -1 keeps the flag's percentage (100 for a new flag).
 * FIN_E_VALIDATION_ERROR for a new key when FIN_FLAGS_MAX flags exist.
 */
enum fin_err
fin_flag_set(struct fin_ctx *ctx, const struct fin_client *client,
    const char *admin_id, const char *key, bool enabled, int rollout_percent,
    const char *description, struct json_object **out)
{
	char		 pct[8];
	const char	*p[5];
	PGresult	*res;
	struct json_object *before = NULL, *d;
	enum fin_err	 e;

	*out = NULL;
	if (!fin_flag_key_valid(key) || rollout_percent < -1 ||
	    rollout_percent > 100)
		return FIN_E_VALIDATION_ERROR;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	/* Serialises creations, so that two at once cannot pass the count. */
	if ((e = Fin_db_exec(ctx, &stmt_lock, NULL, &res)) != FIN_OK)
		goto fail;
	PQclear(res);
	p[0] = key;
	if ((e = Fin_db_exec(ctx, &stmt_get_for_update, p, &res)) != FIN_OK)
		goto fail;
	if (PQntuples(res) == 1)
		before = flag_json(res, 0);
	PQclear(res);
	if (before == NULL) {
		int64_t	 count = FIN_FLAGS_MAX;

		if ((e = Fin_db_exec(ctx, &stmt_count, NULL, &res)) != FIN_OK)
			goto fail;
		(void)fin_parse_int64(PQgetvalue(res, 0, 0), 0, INT64_MAX,
		    &count);
		PQclear(res);
		/*
		 * Each worker holds FIN_FLAGS_MAX flags in key order: one more
		 * would silently turn off whichever sorts last (pdf_export).
		 */
		if (count >= FIN_FLAGS_MAX) {
			e = FIN_E_VALIDATION_ERROR;
			goto fail;
		}
	}
	snprintf(pct, sizeof(pct), "%d", rollout_percent);
	p[1] = enabled ? "true" : "false";
	/* Re-enabling after a rollback keeps the rollout it had. */
	p[2] = rollout_percent >= 0 ? pct : NULL;
	p[3] = description;
	p[4] = admin_id;
	if ((e = Fin_db_exec(ctx, &stmt_upsert, p, &res)) != FIN_OK)
		goto fail;
	*out = flag_json(res, 0);
	PQclear(res);
	d = json_object_new_object();
	json_object_object_add(d, "key", json_object_new_string(key));
	json_object_object_add(d, "before", before);
	before = NULL;
	json_object_object_add(d, "after", json_object_get(*out));
	e = Fin_audit(ctx, client, admin_id, "flag_updated", d);
	json_object_put(d);
	if (e != FIN_OK)
		goto fail;
	if ((e = fin_db_commit(ctx)) != FIN_OK)
		goto fail_committed;
	/* This worker sees its own change at once; the others within a second. */
	ctx->flags_loaded_ms = 0;
	return FIN_OK;
fail:
	fin_db_rollback(ctx);
fail_committed:
	json_object_put(before);
	json_object_put(*out);
	*out = NULL;
	return e;
}
