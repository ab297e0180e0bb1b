/*
 * GET /export/me: everything libfinance holds about the caller, for the
 * right of access and the right to data portability (GDPR art. 15 and
 * 20), as one JSON document written row by row:
 *
 *   {"generated_at": "...",
 *    "user": {id, email, name, role, created_at, updated_at, deleted_at,
 *             failed_logins, locked_until},
 *    "sessions": [{id, ip, user_agent, created_at, last_used_at,
 *                  revoked_at, revoked_reason}],
 *    "transactions": [the API's transaction objects, deleted ones too],
 *    "audit": [{id, action, ip, user_agent, request_id, details,
 *               created_at}],
 *    "idempotency_keys": [{key, created_at, expires_at, status_code}]}
 *
 * What is left out, and why.  The password hash and the refresh-token
 * hashes are credentials, not information about the person: handing them
 * out would give whoever holds the file something to guess against
 * offline.  The stored response bodies of idempotency records are
 * copies of transaction objects already under "transactions", and their
 * request hashes are digests of request bodies the user sent; the key,
 * its times and its status say all there is.  Redis holds nothing that
 * PostgreSQL does not (API.md, "Where state lives").
 *
 * Every row is read in keyset batches inside one read-only snapshot
 * (lib/export.c), serialised with json-c and written, so the document is
 * never whole in memory; elements are one per line, which keeps it
 * diffable.  These reads of other modules' tables live here because the
 * export is one consistent read across all of them.
 */
#include "setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define TS_US(col)	"to_char(" col " AT TIME ZONE 'UTC', " \
			"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static const struct fin_stmt stmt_user = {
	"export_user",
	"SELECT id, email, name, role, " SQL_TS("created_at") ", "
	SQL_TS("updated_at") ", " SQL_TS("deleted_at") ", failed_logins, "
	SQL_TS("locked_until") " FROM users WHERE id = $1", 1 };
static const struct fin_stmt stmt_sessions = {
	"export_sessions",
	"SELECT id, ip, user_agent, " SQL_TS("created_at") ", "
	SQL_TS("last_used_at") ", " SQL_TS("revoked_at") ", revoked_reason, "
	TS_US("created_at")
	" FROM sessions WHERE user_id = $1"
	"   AND (created_at, id) > ($2::timestamptz, $3::uuid)"
	" ORDER BY created_at, id LIMIT $4", 4 };
static const struct fin_stmt stmt_audit = {
	"export_audit",
	"SELECT id, action, ip, user_agent, request_id, details::text, "
	SQL_TS("created_at") ", seq"
	" FROM audit_events WHERE user_id = $1 AND seq > $2::bigint"
	" ORDER BY seq LIMIT $3", 3 };
static const struct fin_stmt stmt_idempotency = {
	"export_idempotency",
	"SELECT key, " SQL_TS("created_at") ", " SQL_TS("expires_at") ", "
	"status_code, " TS_US("created_at")
	" FROM idempotency_keys WHERE user_id = $1"
	"   AND (created_at, key) > ($2::timestamptz, $3)"
	" ORDER BY created_at, key LIMIT $4", 4 };

static struct json_object *
str_or_null(PGresult *res, int i, int col)
{
	return PQgetisnull(res, i, col) ? NULL :
	    json_object_new_string(PQgetvalue(res, i, col));
}

static struct json_object *
session_json(PGresult *res, int i)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", str_or_null(res, i, 0));
	json_object_object_add(o, "ip", str_or_null(res, i, 1));
	json_object_object_add(o, "user_agent", str_or_null(res, i, 2));
	json_object_object_add(o, "created_at", str_or_null(res, i, 3));
	json_object_object_add(o, "last_used_at", str_or_null(res, i, 4));
	json_object_object_add(o, "revoked_at", str_or_null(res, i, 5));
	json_object_object_add(o, "revoked_reason", str_or_null(res, i, 6));
	return o;
}

static struct json_object *
audit_json(PGresult *res, int i)
{
	struct json_object *o = json_object_new_object(), *details;

	json_object_object_add(o, "id", str_or_null(res, i, 0));
	json_object_object_add(o, "action", str_or_null(res, i, 1));
	json_object_object_add(o, "ip", str_or_null(res, i, 2));
	json_object_object_add(o, "user_agent", str_or_null(res, i, 3));
	json_object_object_add(o, "request_id", str_or_null(res, i, 4));
	details = json_tokener_parse(PQgetvalue(res, i, 5));
	json_object_object_add(o, "details", details != NULL ? details :
	    json_object_new_object());
	json_object_object_add(o, "created_at", str_or_null(res, i, 6));
	return o;
}

static struct json_object *
idempotency_json(PGresult *res, int i)
{
	struct json_object *o = json_object_new_object();
	int64_t		 st = 0;

	json_object_object_add(o, "key", str_or_null(res, i, 0));
	json_object_object_add(o, "created_at", str_or_null(res, i, 1));
	json_object_object_add(o, "expires_at", str_or_null(res, i, 2));
	/* NULL while the first request with the key was still running. */
	json_object_object_add(o, "status_code", PQgetisnull(res, i, 3) ||
	    !fin_parse_int64(PQgetvalue(res, i, 3), 100, 599, &st) ? NULL :
	    json_object_new_int64(st));
	return o;
}

/*
 * The keyset sections: the statement, how many keyset parameters follow
 * the user id, the result columns that carry them and their values
 * before the first row.
 */
static const struct section {
	const char		*name;
	const struct fin_stmt	*stmt;
	int			 nkey;
	int			 keycol[2];
	const char		*start[2];
	struct json_object	*(*json)(PGresult *, int);
} sections[] = {
	{ "sessions",         &stmt_sessions,    2, { 7, 0 },
	  { "-infinity", "00000000-0000-0000-0000-000000000000" }, session_json },
	{ "audit",            &stmt_audit,       1, { 7, -1 },
	  { "0", NULL },                                          audit_json },
	{ "idempotency_keys", &stmt_idempotency, 2, { 4, 0 },
	  { "-infinity", "" },                                    idempotency_json },
};

struct doc {
	struct fin_chunk chunk;
	bool		 first;		/* no element yet in the open array */
	int64_t		 rows;
};

/* Writes o (consumed) as the next element of the open array. */
static enum fin_err
element(struct doc *d, struct json_object *o)
{
	const char	*s;
	size_t		 n;
	bool		 ok;

	if (o == NULL)
		return FIN_E_INTERNAL_ERROR;
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	ok = s != NULL && Fin_chunk_puts(&d->chunk, d->first ? "\n" : ",\n") &&
	    Fin_chunk_put(&d->chunk, s, n);
	json_object_put(o);
	d->first = false;
	if (s == NULL)
		return FIN_E_INTERNAL_ERROR;
	return ok ? FIN_OK : FIN_E_SERVICE_UNAVAILABLE;
}

static enum fin_err
open_array(struct doc *d, const char *name)
{
	d->first = true;
	if (!Fin_chunk_puts(&d->chunk, ",\n\"") ||
	    !Fin_chunk_puts(&d->chunk, name) || !Fin_chunk_puts(&d->chunk, "\":["))
		return FIN_E_SERVICE_UNAVAILABLE;
	return FIN_OK;
}

static enum fin_err
close_array(struct doc *d)
{
	return Fin_chunk_puts(&d->chunk, d->first ? "]" : "\n]") ? FIN_OK :
	    FIN_E_SERVICE_UNAVAILABLE;
}

static enum fin_err
put_txn(void *arg, PGresult *res, int i)
{
	return element(arg, Fin_txn_row_json(res, i));
}

/* One keyset section, batch by batch; *count is its number of rows. */
static enum fin_err
put_section(struct fin_ctx *ctx, struct doc *d, const struct section *s,
    const char *user_id, int64_t *count)
{
	char		 key[2][256], limit[16];
	const char	*p[4];
	PGresult	*res;
	enum fin_err	 e;
	int		 i, k, n;

	snprintf(limit, sizeof(limit), "%d", FIN_EXPORT_BATCH);
	p[0] = user_id;
	for (k = 0; k < s->nkey; k++) {
		snprintf(key[k], sizeof(key[k]), "%s", s->start[k]);
		p[1 + k] = key[k];
	}
	p[1 + s->nkey] = limit;
	if ((e = open_array(d, s->name)) != FIN_OK)
		return e;
	for (;;) {
		if ((e = Fin_db_exec(ctx, s->stmt, p, &res)) != FIN_OK)
			return e;
		n = PQntuples(res);
		for (i = 0; i < n; i++) {
			if ((e = element(d, s->json(res, i))) != FIN_OK) {
				PQclear(res);
				return e;
			}
			(*count)++;
		}
		/* Keys are at most 255 bytes (the idempotency key's CHECK). */
		for (k = 0; n > 0 && k < s->nkey; k++)
			snprintf(key[k], sizeof(key[k]), "%s",
			    PQgetvalue(res, n - 1, s->keycol[k]));
		PQclear(res);
		if (n < FIN_EXPORT_BATCH)
			return close_array(d);
	}
}

static enum fin_err
put_user(struct fin_ctx *ctx, struct doc *d, const char *user_id)
{
	const char	*p[1] = { user_id };
	char		 now[32];
	PGresult	*res;
	struct json_object *o;
	int64_t		 failures = 0;
	const char	*s;
	enum fin_err	 e;

	if ((e = Fin_db_exec(ctx, &stmt_user, p, &res)) != FIN_OK)
		return e;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return FIN_E_UNAUTHORIZED;
	}
	o = json_object_new_object();
	json_object_object_add(o, "id", str_or_null(res, 0, 0));
	json_object_object_add(o, "email", str_or_null(res, 0, 1));
	json_object_object_add(o, "name", str_or_null(res, 0, 2));
	json_object_object_add(o, "role", str_or_null(res, 0, 3));
	json_object_object_add(o, "created_at", str_or_null(res, 0, 4));
	json_object_object_add(o, "updated_at", str_or_null(res, 0, 5));
	json_object_object_add(o, "deleted_at", str_or_null(res, 0, 6));
	(void)fin_parse_int64(PQgetvalue(res, 0, 7), 0, INT64_MAX, &failures);
	json_object_object_add(o, "failed_logins", json_object_new_int64(failures));
	json_object_object_add(o, "locked_until", str_or_null(res, 0, 8));
	PQclear(res);
	fin_time_rfc3339(time(NULL), now);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	e = s != NULL && Fin_chunk_puts(&d->chunk, "{\"generated_at\":\"") &&
	    Fin_chunk_puts(&d->chunk, now) &&
	    Fin_chunk_puts(&d->chunk, "\",\n\"user\":") &&
	    Fin_chunk_puts(&d->chunk, s) ? FIN_OK : FIN_E_SERVICE_UNAVAILABLE;
	json_object_put(o);
	return e;
}

enum fin_err
fin_export_user(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, fin_write_fn *write, void *arg)
{
	struct doc	*d;
	struct json_object *counts, *extra;
	int64_t		 n[1 + sizeof(sections) / sizeof(sections[0])];
	size_t		 i;
	enum fin_err	 e;

	memset(n, 0, sizeof(n));
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return FIN_E_INTERNAL_ERROR;
	if (!Fin_chunk_init(&d->chunk, write, arg)) {
		free(d);
		return FIN_E_INTERNAL_ERROR;
	}
	if ((e = Fin_export_snapshot(ctx)) != FIN_OK)
		goto out;
	if ((e = put_user(ctx, d, user_id)) != FIN_OK)
		goto fail;
	/* The order of the document: sessions, transactions, audit, keys. */
	if ((e = put_section(ctx, d, &sections[0], user_id, &n[0])) != FIN_OK)
		goto fail;
	if ((e = open_array(d, "transactions")) != FIN_OK ||
	    (e = Fin_export_txns(ctx, user_id, NULL, NULL, true, put_txn, d,
	    &n[1])) != FIN_OK || (e = close_array(d)) != FIN_OK)
		goto fail;
	for (i = 1; i < sizeof(sections) / sizeof(sections[0]); i++)
		if ((e = put_section(ctx, d, &sections[i], user_id,
		    &n[i + 1])) != FIN_OK)
			goto fail;
	if (!Fin_chunk_puts(&d->chunk, "}\n")) {
		e = FIN_E_SERVICE_UNAVAILABLE;
		goto fail;
	}
	if ((e = fin_db_commit(ctx)) != FIN_OK)
		goto partial;
	for (i = 0; i < sizeof(n) / sizeof(n[0]); i++)
		d->rows += n[i];
	counts = json_object_new_object();
	json_object_object_add(counts, "sessions", json_object_new_int64(n[0]));
	json_object_object_add(counts, "transactions", json_object_new_int64(n[1]));
	json_object_object_add(counts, "audit", json_object_new_int64(n[2]));
	json_object_object_add(counts, "idempotency_keys",
	    json_object_new_int64(n[3]));
	extra = json_object_new_object();
	json_object_object_add(extra, "sections", counts);
	e = Fin_export_audit(ctx, client, user_id, "json", NULL, NULL, d->rows,
	    true, extra);
	if (e == FIN_OK && !Fin_chunk_flush(&d->chunk))
		e = FIN_E_SERVICE_UNAVAILABLE;
	goto out;
fail:
	fin_db_rollback(ctx);
partial:
	/*
	 * The document stays unterminated: a reader's parser fails on it,
	 * which is what a cut-short export must do.
	 */
	if (d->chunk.sent > 0) {
		for (i = 0; i < sizeof(n) / sizeof(n[0]); i++)
			d->rows += n[i];
		Fin_export_audit_partial(ctx, client, user_id, "json", NULL,
		    NULL, d->rows);
	}
out:
	Fin_chunk_free(&d->chunk);
	free(d);
	return e;
}
