/*
 * The audit trail: append-only rows (a trigger refuses UPDATE and DELETE),
 * each written in the SQL transaction of the change it records, listed
 * newest first with keyset pagination on the identity column.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"

static const struct fin_stmt stmt_insert = {
	"audit_insert",
	"INSERT INTO audit_events (user_id, action, ip, user_agent, request_id,"
	" details) VALUES ($1, $2, $3, $4, $5, $6::jsonb)", 6 };

static const struct fin_stmt stmt_list = {
	"audit_list",
	"SELECT seq, id, action, ip, user_agent, request_id, details::text, "
	SQL_TS("created_at") ", user_id"
	" FROM audit_events"
	" WHERE ($1::uuid IS NULL OR user_id = $1)"
	"   AND ($2::text IS NULL OR action = $2)"
	"   AND ($3::bigint IS NULL OR seq < $3)"
	" ORDER BY seq DESC LIMIT $4", 4 };

void
Fin_audit_user_agent(const struct fin_client *client,
    char ua[FIN_AUDIT_FIELD_MAX + 1])
{
	size_t	 n;

	/* Cut on a character boundary so the column stays valid UTF-8. */
	n = strnlen(client->user_agent, FIN_AUDIT_FIELD_MAX);
	while (n > 0 && n < strlen(client->user_agent) &&
	    ((unsigned char)client->user_agent[n] & 0xC0) == 0x80)
		n--;
	memcpy(ua, client->user_agent, n);
	ua[n] = '\0';
	if (!fin_utf8_valid(ua, n))
		ua[0] = '\0';
}

enum fin_err
Fin_audit(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *action, struct json_object *details)
{
	const char	*p[6];
	char		 ua[FIN_AUDIT_FIELD_MAX + 1];
	PGresult	*res;
	enum fin_err	 e;

	Fin_audit_user_agent(client, ua);
	p[0] = user_id;
	p[1] = action;
	p[2] = client->ip;
	p[3] = ua;
	p[4] = client->request_id;
	p[5] = details != NULL ? json_object_to_json_string_ext(details,
	    JSON_C_TO_STRING_PLAIN) : "{}";
	e = Fin_db_exec(ctx, &stmt_insert, p, &res);
	PQclear(res);
	return e;
}

static struct json_object *
row_json(PGresult *res, int i, bool with_user)
{
	struct json_object *o, *details;

	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(PQgetvalue(res, i, 1)));
	json_object_object_add(o, "action", json_object_new_string(PQgetvalue(res, i, 2)));
	json_object_object_add(o, "ip", json_object_new_string(PQgetvalue(res, i, 3)));
	json_object_object_add(o, "user_agent", json_object_new_string(PQgetvalue(res, i, 4)));
	json_object_object_add(o, "request_id", json_object_new_string(PQgetvalue(res, i, 5)));
	details = json_tokener_parse(PQgetvalue(res, i, 6));
	json_object_object_add(o, "details", details != NULL ? details :
	    json_object_new_object());
	json_object_object_add(o, "created_at", json_object_new_string(PQgetvalue(res, i, 7)));
	if (with_user)
		json_object_object_add(o, "user_id", PQgetisnull(res, i, 8) ? NULL :
		    json_object_new_string(PQgetvalue(res, i, 8)));
	return o;
}

enum fin_err
fin_audit_list(struct fin_ctx *ctx, const struct fin_audit_query *q,
    struct json_object **out)
{
	char		 payload[FIN_CURSOR_PAYLOAD_MAX + 1], limit[24];
	char		 next[FIN_CURSOR_MAX];
	const char	*p[4];
	int64_t		 seq;
	PGresult	*res;
	struct json_object *data, *o;
	enum fin_err	 e;
	int		 i, n;

	*out = NULL;
	p[2] = NULL;
	if (q->cursor != NULL) {
		if (!Fin_cursor_decode(ctx->cfg, q->cursor, payload) ||
		    strncmp(payload, "a:", 2) != 0 ||
		    !fin_parse_int64(payload + 2, 1, INT64_MAX, &seq))
			return FIN_E_INVALID_CURSOR;
		p[2] = payload + 2;
	}
	/* One row more than asked tells whether there is a next page. */
	snprintf(limit, sizeof(limit), "%lld", (long long)q->limit + 1);
	/* A user's own trail must name the user: never fall through to all. */
	if (!q->all_users && q->user_id == NULL)
		return FIN_E_INTERNAL_ERROR;
	p[0] = q->user_id;
	p[1] = q->action;
	p[3] = limit;
	e = Fin_db_exec(ctx, &stmt_list, p, &res);
	if (e != FIN_OK)
		return e;
	data = json_object_new_array();
	n = PQntuples(res);
	for (i = 0; i < n && i < q->limit; i++)
		json_object_array_add(data, row_json(res, i, q->all_users));
	o = json_object_new_object();
	json_object_object_add(o, "data", data);
	if (n > q->limit) {
		snprintf(payload, sizeof(payload), "a:%s",
		    PQgetvalue(res, (int)q->limit - 1, 0));
		if (!Fin_cursor_encode(ctx->cfg, payload, next)) {
			PQclear(res);
			json_object_put(o);
			return FIN_E_INTERNAL_ERROR;
		}
		json_object_object_add(o, "next_cursor", json_object_new_string(next));
	} else
		json_object_object_add(o, "next_cursor", NULL);
	PQclear(res);
	*out = o;
	return FIN_OK;
}
