/*
 * Money: create, read, update, soft-delete and restore transactions, and
 * list them with keyset pagination.  Every statement is scoped by the
 * caller's user id in its WHERE clause, so another user's id is exactly a
 * missing id.  Every write is one SQL transaction with its audit event,
 * whose details hold the row before and after.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"

/*
 * The new row and its audit event in one statement, one round trip and
 * atomic on its own.  The event's "after" is the row as the API shows it
 * (Fin_txn_row_json): the e2e tests check that it chains with the events
 * that follow, which are made in C.
 */
static const struct fin_stmt stmt_insert = {
	"txn_insert",
	"WITH t AS (INSERT INTO transactions (user_id, amount, currency,"
	" description, category, occurred_on) VALUES ($1, $2::bigint, $3, $4,"
	" $5, COALESCE($6::date, (now() AT TIME ZONE 'UTC')::date))"
	" RETURNING *),"
	" a AS (INSERT INTO audit_events (user_id, action, ip, user_agent,"
	" request_id, details) SELECT $1, 'transaction_created', $7, $8, $9,"
	" jsonb_build_object('transaction_id', id, 'before', NULL, 'after',"
	" jsonb_build_object('id', id, 'amount', amount, 'currency', currency,"
	" 'description', description, 'category', category,"
	" 'occurred_on', occurred_on::text,"
	" 'created_at', " SQL_TS("created_at") ","
	" 'updated_at', " SQL_TS("updated_at") ","
	" 'deleted_at', " SQL_TS("deleted_at") ")) FROM t)"
	" SELECT " FIN_TXN_COLS " FROM t", 9 };
static const struct fin_stmt stmt_get = {
	"txn_get",
	"SELECT " FIN_TXN_COLS " FROM transactions WHERE id = $1 AND user_id = $2", 2 };
static const struct fin_stmt stmt_get_for_update = {
	"txn_get_for_update",
	"SELECT " FIN_TXN_COLS " FROM transactions WHERE id = $1 AND user_id = $2"
	" FOR UPDATE", 2 };
static const struct fin_stmt stmt_update = {
	"txn_update",
	"UPDATE transactions SET"
	" amount = COALESCE($3::bigint, amount),"
	" currency = COALESCE($4, currency),"
	" description = COALESCE($5, description),"
	" category = COALESCE($6, category),"
	" occurred_on = COALESCE($7::date, occurred_on),"
	" updated_at = now()"
	" WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
	" RETURNING " FIN_TXN_COLS, 7 };
static const struct fin_stmt stmt_delete = {
	"txn_soft_delete",
	"UPDATE transactions SET deleted_at = now(), updated_at = now()"
	" WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
	" RETURNING " FIN_TXN_COLS, 2 };
static const struct fin_stmt stmt_restore = {
	"txn_restore",
	"UPDATE transactions SET deleted_at = NULL, updated_at = now()"
	" WHERE id = $1 AND user_id = $2 AND deleted_at IS NOT NULL"
	" RETURNING " FIN_TXN_COLS, 2 };

/*
 * The list: one statement per deleted-mode and first/next page, so that
 * each plan matches its index exactly (the live-rows index is partial on
 * deleted_at IS NULL) and the keyset condition is an index bound, never a
 * filter: page 10 million costs what page 1 costs.
 *
 * Each comes in two forms.  The general one takes every filter and the
 * limit as parameters; PostgreSQL plans it again at every execution (a
 * custom plan), because its "$n IS NULL OR" terms only vanish once their
 * values are known, and a generic plan would guess LIMIT $6 at a tenth of
 * the user's rows.  The default page (no filter, FIN_PAGE_DEFAULT rows),
 * which is most requests, has a form with neither: its generic plan costs
 * what a custom one does, so PostgreSQL keeps it after five executions
 * and stops planning, which took longer than running the query.
 */
#define LIST_FILTERS \
	"   AND ($2::date IS NULL OR occurred_on >= $2::date)" \
	"   AND ($3::date IS NULL OR occurred_on <= $3::date)" \
	"   AND ($4::text IS NULL OR category = $4)" \
	"   AND ($5::text IS NULL OR description ILIKE '%' || $5 || '%' ESCAPE '\\')"
/* Qualified: a bare occurred_on would sort by the ::text output column. */
#define LIST_ORDER(limit) \
	" ORDER BY transactions.occurred_on DESC, transactions.created_at DESC," \
	" transactions.id DESC LIMIT " limit
#define LIST_AFTER(on, at, id) \
	"   AND (occurred_on, created_at, id) < (" on "::date, " at \
	"::timestamptz, " id "::uuid)"
/* General: $1 user, $2-$5 the filters, $6 the limit, $7-$9 the cursor. */
#define LIST_STMT(name, deleted, after, n) { name, \
	"SELECT " FIN_TXN_COLS " FROM transactions WHERE user_id = $1" deleted \
	LIST_FILTERS after LIST_ORDER("$6"), n }
/* Default page: $1 user, $2-$4 the cursor. */
#define DEFAULT_LIMIT	"51"
_Static_assert(FIN_PAGE_DEFAULT == 50, "DEFAULT_LIMIT is FIN_PAGE_DEFAULT + 1");
#define DEFAULT_STMT(name, deleted, after, n) { name, \
	"SELECT " FIN_TXN_COLS " FROM transactions WHERE user_id = $1" deleted \
	after LIST_ORDER(DEFAULT_LIMIT), n }
#define LIVE		" AND deleted_at IS NULL"
#define DELETED		" AND deleted_at IS NOT NULL"

/* [deleted mode][after a cursor][default page] */
static const struct fin_stmt list_stmts[3][2][2] = {
	{ { LIST_STMT("txn_list_live", LIVE, "", 6),
	    DEFAULT_STMT("txn_list_live_default", LIVE, "", 1) },
	  { LIST_STMT("txn_list_live_after", LIVE, LIST_AFTER("$7", "$8", "$9"), 9),
	    DEFAULT_STMT("txn_list_live_default_after", LIVE,
	    LIST_AFTER("$2", "$3", "$4"), 4) } },
	{ { LIST_STMT("txn_list_all", "", "", 6),
	    DEFAULT_STMT("txn_list_all_default", "", "", 1) },
	  { LIST_STMT("txn_list_all_after", "", LIST_AFTER("$7", "$8", "$9"), 9),
	    DEFAULT_STMT("txn_list_all_default_after", "",
	    LIST_AFTER("$2", "$3", "$4"), 4) } },
	{ { LIST_STMT("txn_list_deleted", DELETED, "", 6),
	    DEFAULT_STMT("txn_list_deleted_default", DELETED, "", 1) },
	  { LIST_STMT("txn_list_deleted_after", DELETED,
	    LIST_AFTER("$7", "$8", "$9"), 9),
	    DEFAULT_STMT("txn_list_deleted_default_after", DELETED,
	    LIST_AFTER("$2", "$3", "$4"), 4) } },
};

/*
 * A list page builds fifty of these: the keys are constants and new, so
 * json-c neither copies them nor looks for an earlier one of each.
 */
static void
add_field(struct json_object *o, const char *key, struct json_object *v)
{
	json_object_object_add_ex(o, key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW |
	    JSON_C_OBJECT_ADD_CONSTANT_KEY);
}

/* A timestamp column in the API's form, or JSON null for SQL NULL. */
static struct json_object *
ts_json(PGresult *res, int i, int col)
{
	char		 ts[FIN_TS_API_MAX];
	const char	*v = PQgetvalue(res, i, col);

	if (PQgetisnull(res, i, col))
		return NULL;
	/* Only a session not set up by Fin_db_connect writes another form. */
	if (!Fin_db_ts_api(v, false, ts, sizeof(ts))) {
		fin_log(FIN_LOG_ERROR, "db_timestamp", "unexpected timestamp "
		    "form \"%.40s\"", v);
		return json_object_new_string(v);
	}
	return json_object_new_string(ts);
}

struct json_object *
Fin_txn_row_json(PGresult *res, int i)
{
	struct json_object *o = json_object_new_object();
	int64_t		 amount = 0;

	(void)fin_parse_int64(PQgetvalue(res, i, 1), INT64_MIN, INT64_MAX, &amount);
	add_field(o, "id", json_object_new_string(PQgetvalue(res, i, 0)));
	add_field(o, "amount", json_object_new_int64(amount));
	add_field(o, "currency", json_object_new_string(PQgetvalue(res, i, 2)));
	add_field(o, "description", json_object_new_string(PQgetvalue(res, i, 3)));
	add_field(o, "category", json_object_new_string(PQgetvalue(res, i, 4)));
	add_field(o, "occurred_on", json_object_new_string(PQgetvalue(res, i, 5)));
	add_field(o, "created_at", ts_json(res, i, 6));
	add_field(o, "updated_at", ts_json(res, i, 7));
	add_field(o, "deleted_at", ts_json(res, i, 8));
	return o;
}

static enum fin_err
audit_change(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *action, struct json_object *before,
    struct json_object *after)
{
	struct json_object *d = json_object_new_object();
	enum fin_err	 e;

	json_object_object_add(d, "transaction_id", json_object_new_string(
	    json_object_get_string(json_object_object_get(after != NULL ? after :
	    before, "id"))));
	json_object_object_add(d, "before", before != NULL ?
	    json_object_get(before) : NULL);
	json_object_object_add(d, "after", after != NULL ?
	    json_object_get(after) : NULL);
	e = Fin_audit(ctx, client, user_id, action, d);
	json_object_put(d);
	return e;
}

static bool
valid_currency(const char *c)
{
	return c == NULL || fin_currency_minor_units(c) >= 0;
}

/* ------------------------------------------------------------------ */
/* Writes                                                              */
/* ------------------------------------------------------------------ */

/*
 * Creates a transaction with its audit event (stmt_insert); inside the
 * caller's SQL transaction when there is an idempotency record to share it.
 */
enum fin_err
Fin_txn_insert(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const struct fin_txn_input *in,
    struct json_object **out)
{
	char		 amount[24], ua[FIN_AUDIT_FIELD_MAX + 1];
	const char	*p[9];
	PGresult	*res;
	enum fin_err	 e;

	*out = NULL;
	if (!in->has_amount || in->currency == NULL)
		return FIN_E_VALIDATION_ERROR;
	if (!valid_currency(in->currency))
		return FIN_E_VALIDATION_ERROR;
	snprintf(amount, sizeof(amount), "%lld", (long long)in->amount);
	p[0] = user_id;
	p[1] = amount;
	p[2] = in->currency;
	p[3] = in->description != NULL ? in->description : "";
	p[4] = in->category != NULL ? in->category : "";
	p[5] = in->occurred_on;
	Fin_audit_user_agent(client, ua);
	p[6] = client->ip;
	p[7] = ua;
	p[8] = client->request_id;
	if ((e = Fin_db_exec_once(ctx, &stmt_insert, p, &res)) != FIN_OK)
		return e;
	*out = PQntuples(res) == 1 ? Fin_txn_row_json(res, 0) : NULL;
	PQclear(res);
	return *out != NULL ? FIN_OK : FIN_E_INTERNAL_ERROR;
}

enum fin_err
fin_txn_update(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *id, const struct fin_txn_input *in,
    struct json_object **out)
{
	char		 amount[24];
	const char	*p[7];
	PGresult	*res;
	struct json_object *before = NULL;
	enum fin_err	 e;

	*out = NULL;
	if (!fin_valid_uuid(id))
		return FIN_E_NOT_FOUND;
	if (!valid_currency(in->currency))
		return FIN_E_VALIDATION_ERROR;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	p[0] = id;
	p[1] = user_id;
	if ((e = Fin_db_exec(ctx, &stmt_get_for_update, p, &res)) != FIN_OK)
		goto fail;
	/* Deleted rows are not edited: restore first. */
	if (PQntuples(res) != 1 || !PQgetisnull(res, 0, 8)) {
		PQclear(res);
		e = FIN_E_NOT_FOUND;
		goto fail;
	}
	before = Fin_txn_row_json(res, 0);
	PQclear(res);
	snprintf(amount, sizeof(amount), "%lld", (long long)in->amount);
	p[2] = in->has_amount ? amount : NULL;
	p[3] = in->currency;
	p[4] = in->description;
	p[5] = in->category;
	p[6] = in->occurred_on;
	if ((e = Fin_db_exec(ctx, &stmt_update, p, &res)) != FIN_OK)
		goto fail;
	if (PQntuples(res) != 1) {
		PQclear(res);
		e = FIN_E_NOT_FOUND;
		goto fail;
	}
	*out = Fin_txn_row_json(res, 0);
	PQclear(res);
	if ((e = audit_change(ctx, client, user_id, "transaction_updated",
	    before, *out)) != FIN_OK)
		goto fail;
	json_object_put(before);
	if ((e = fin_db_commit(ctx)) != FIN_OK)
		goto fail_committed;
	fin_cache_invalidate(ctx, user_id);
	return FIN_OK;
fail:
	fin_db_rollback(ctx);
	json_object_put(before);
fail_committed:
	json_object_put(*out);
	*out = NULL;
	return e;
}

/*
 * Soft delete and restore share one shape: a conditional UPDATE, and when
 * it touched nothing, a look-up that tells "missing" from "already so".
 */
static enum fin_err
set_deleted(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *id, bool deleted, struct json_object **out)
{
	const char	*p[2] = { id, user_id };
	PGresult	*res;
	struct json_object *before = NULL;
	enum fin_err	 e;

	*out = NULL;
	if (!fin_valid_uuid(id))
		return FIN_E_NOT_FOUND;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	if ((e = Fin_db_exec(ctx, &stmt_get_for_update, p, &res)) != FIN_OK)
		goto fail;
	if (PQntuples(res) != 1) {
		PQclear(res);
		e = FIN_E_NOT_FOUND;
		goto fail;
	}
	if (PQgetisnull(res, 0, 8) != deleted) {
		/* Already in the state asked for: a harmless no-op. */
		*out = Fin_txn_row_json(res, 0);
		PQclear(res);
		fin_db_rollback(ctx);
		return FIN_OK;
	}
	before = Fin_txn_row_json(res, 0);
	PQclear(res);
	if ((e = Fin_db_exec(ctx, deleted ? &stmt_delete : &stmt_restore, p,
	    &res)) != FIN_OK)
		goto fail;
	*out = Fin_txn_row_json(res, 0);
	PQclear(res);
	if ((e = audit_change(ctx, client, user_id, deleted ?
	    "transaction_deleted" : "transaction_restored", before, *out)) != FIN_OK)
		goto fail;
	json_object_put(before);
	if ((e = fin_db_commit(ctx)) != FIN_OK) {
		json_object_put(*out);
		*out = NULL;
		return e;
	}
	fin_cache_invalidate(ctx, user_id);
	return FIN_OK;
fail:
	fin_db_rollback(ctx);
	json_object_put(before);
	json_object_put(*out);
	*out = NULL;
	return e;
}

enum fin_err
fin_txn_delete(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *id)
{
	struct json_object *o;
	enum fin_err	 e;

	e = set_deleted(ctx, client, user_id, id, true, &o);
	json_object_put(o);
	return e;
}

enum fin_err
fin_txn_restore(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *id, struct json_object **out)
{
	return set_deleted(ctx, client, user_id, id, false, out);
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */
/* ------------------------------------------------------------------ */

enum fin_err
fin_txn_get(struct fin_ctx *ctx, const char *user_id, const char *id,
    struct json_object **out)
{
	const char	*p[2] = { id, user_id };
	PGresult	*res;
	enum fin_err	 e;

	*out = NULL;
	if (!fin_valid_uuid(id))
		return FIN_E_NOT_FOUND;
	if ((e = Fin_db_exec(ctx, &stmt_get, p, &res)) != FIN_OK)
		return e;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return FIN_E_NOT_FOUND;
	}
	*out = Fin_txn_row_json(res, 0);
	PQclear(res);
	return FIN_OK;
}

/* Escapes LIKE's metacharacters: q is literal text (API.md). */
static char *
like_literal(struct fin_arena *a, const char *q)
{
	size_t	 n = strlen(q), i, j = 0;
	char	*out;

	out = fin_arena_alloc(a, n * 2 + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
			out[j++] = '\\';
		out[j++] = q[i];
	}
	out[j] = '\0';
	return out;
}

/* Cursor payload: "t|<occurred_on>|<created_at with microseconds>|<id>". */
static bool
parse_cursor(const struct fin_config *cfg, const char *cursor,
    char payload[FIN_CURSOR_PAYLOAD_MAX + 1], const char *parts[3])
{
	char	*a, *b, *c;

	if (!Fin_cursor_decode(cfg, cursor, payload) ||
	    strncmp(payload, "t|", 2) != 0)
		return false;
	a = payload + 2;
	if ((b = strchr(a, '|')) == NULL)
		return false;
	*b++ = '\0';
	if ((c = strchr(b, '|')) == NULL)
		return false;
	*c++ = '\0';
	if (!fin_valid_date(a) || strlen(b) != 27 || !fin_valid_uuid(c))
		return false;
	parts[0] = a;
	parts[1] = b;
	parts[2] = c;
	return true;
}

enum fin_err
fin_txn_list(struct fin_ctx *ctx, struct fin_arena *a,
    const struct fin_txn_query *q, struct json_object **out)
{
	char		 payload[FIN_CURSOR_PAYLOAD_MAX + 1], limit[24];
	char		 next[FIN_CURSOR_MAX], ts[FIN_TS_API_MAX];
	const char	*p[9], *after[3] = { NULL, NULL, NULL };
	const struct fin_stmt *st;
	PGresult	*res;
	struct json_object *data;
	enum fin_err	 e;
	int		 i, n;
	bool		 plain;

	*out = NULL;
	memset(p, 0, sizeof(p));
	if (q->cursor != NULL &&
	    !parse_cursor(ctx->cfg, q->cursor, payload, after))
		return FIN_E_INVALID_CURSOR;
	p[0] = q->user_id;
	plain = q->limit == FIN_PAGE_DEFAULT && q->from == NULL &&
	    q->to == NULL && q->category == NULL && q->q == NULL;
	if (plain)
		memcpy(&p[1], after, sizeof(after));
	else {
		if (q->q != NULL && (p[4] = like_literal(a, q->q)) == NULL)
			return FIN_E_INTERNAL_ERROR;
		/* One row more than asked tells whether there is a next page. */
		snprintf(limit, sizeof(limit), "%lld", (long long)q->limit + 1);
		p[1] = q->from;
		p[2] = q->to;
		p[3] = q->category;
		p[5] = limit;
		memcpy(&p[6], after, sizeof(after));
	}
	st = &list_stmts[q->deleted][q->cursor != NULL][plain];
	if ((e = Fin_db_exec(ctx, st, p, &res)) != FIN_OK)
		return e;
	data = json_object_new_array();
	n = PQntuples(res);
	for (i = 0; i < n && i < q->limit; i++)
		json_object_array_add(data, Fin_txn_row_json(res, i));
	*out = json_object_new_object();
	json_object_object_add(*out, "data", data);
	if (n > q->limit) {
		i = (int)q->limit - 1;
		if (!Fin_db_ts_api(PQgetvalue(res, i, 6), true, ts, sizeof(ts)))
			ts[0] = '\0';
		snprintf(payload, sizeof(payload), "t|%s|%s|%s",
		    PQgetvalue(res, i, 5), ts, PQgetvalue(res, i, 0));
		if (ts[0] == '\0' || !Fin_cursor_encode(ctx->cfg, payload, next)) {
			PQclear(res);
			json_object_put(*out);
			*out = NULL;
			return FIN_E_INTERNAL_ERROR;
		}
		json_object_object_add(*out, "next_cursor", json_object_new_string(next));
	} else
		json_object_object_add(*out, "next_cursor", NULL);
	PQclear(res);
	return FIN_OK;
}
