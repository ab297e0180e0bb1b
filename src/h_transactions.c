/*
 * /transactions: the money.  Handlers turn the validated body and query
 * into a fin_txn_* call; the first page of the list and the summary are
 * served from the Redis response cache when it has them (X-Cache).
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

#define Q_MAX_CHARS	200	/* a search term longer than this is no search */

static void
input_from_body(const struct request *req, struct fin_txn_input *in)
{
	const struct fin_value *v;

	memset(in, 0, sizeof(*in));
	if ((v = request_field(req, "amount")) != NULL) {
		in->has_amount = true;
		in->amount = v->i;
	}
	if ((v = request_field(req, "currency")) != NULL)
		in->currency = v->s;
	if ((v = request_field(req, "description")) != NULL)
		in->description = v->s;
	if ((v = request_field(req, "category")) != NULL)
		in->category = v->s;
	if ((v = request_field(req, "occurred_on")) != NULL)
		in->occurred_on = v->s;
}

static void
reply_txn(struct request *req, int status, struct json_object *txn)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "transaction", txn);
	reply_json(req, status, o);
}

enum fin_err
h_txn_create(struct request *req)
{
	struct fin_txn_input in;
	struct fin_idempotency idem, *ip = NULL;
	struct fin_created c;
	enum fin_err	 e;

	input_from_body(req, &in);
	if (req->idempotency_key != NULL) {
		if (!fin_idempotency_key_valid(req->idempotency_key))
			return field_error(req, "Idempotency-Key",
			    "must be 1 to 255 printable ASCII characters, "
			    "without spaces");
		idem.key = req->idempotency_key;
		idem.request = (const unsigned char *)req->body;
		idem.request_len = req->body_len;
		ip = &idem;
	}
	e = fin_txn_create(req->ctx, &req->client, req->user_id, &in, ip, &c);
	if (e != FIN_OK)
		return e;
	if (c.replayed)
		resp_header(req, "Idempotent-Replayed", "true");
	reply_json(req, c.status, c.body);
	return FIN_OK;
}

enum fin_err
h_txn_get(struct request *req)
{
	struct json_object *t;
	enum fin_err	 e;

	e = fin_txn_get(req->ctx, req->user_id, request_param(req, 0), &t);
	if (e != FIN_OK)
		return e;
	reply_txn(req, 200, t);
	return FIN_OK;
}

enum fin_err
h_txn_update(struct request *req)
{
	struct fin_txn_input in;
	struct json_object *t;
	enum fin_err	 e;

	input_from_body(req, &in);
	if (!in.has_amount && in.currency == NULL && in.description == NULL &&
	    in.category == NULL && in.occurred_on == NULL)
		return field_error(req, "body", "must name at least one of amount, "
		    "currency, description, category, occurred_on");
	e = fin_txn_update(req->ctx, &req->client, req->user_id,
	    request_param(req, 0), &in, &t);
	if (e != FIN_OK)
		return e;
	reply_txn(req, 200, t);
	return FIN_OK;
}

enum fin_err
h_txn_delete(struct request *req)
{
	enum fin_err	 e;

	e = fin_txn_delete(req->ctx, &req->client, req->user_id,
	    request_param(req, 0));
	if (e != FIN_OK)
		return e;
	reply_empty(req, 204);
	return FIN_OK;
}

enum fin_err
h_txn_restore(struct request *req)
{
	struct json_object *t;
	enum fin_err	 e;

	e = fin_txn_restore(req->ctx, &req->client, req->user_id,
	    request_param(req, 0), &t);
	if (e != FIN_OK)
		return e;
	reply_txn(req, 200, t);
	return FIN_OK;
}

/*
 * Serves the page from the cache, or runs fill and stores what it made.
 * The key is the route and the query string as sent: a page is only ever
 * stored after its query passed validation, so a hit needs no other
 * check.  The gate usually looked it up already (R_CACHED); only data of
 * the caller, under the caller's generation.  Cache-Control: no-cache
 * skips the look-up but stores the fresh page (X-Cache: BYPASS), so a
 * reload refreshes it for the next reader; no-store keeps nothing.
 */
static enum fin_err
cached(struct request *req,
    enum fin_err (*fill)(struct request *, void *, struct json_object **),
    void *arg)
{
	struct fin_cache_entry ce = req->gate.cache;
	struct json_object *o;
	const char	*text;
	size_t		 len;
	bool		 fresh = (req->cache_directives & FIN_CACHE_NO_READ) != 0;
	char		 etag[ETAG_LEN + 1];
	enum fin_err	 e;

	if (!ce.usable && !fresh)
		e = fin_cache_get(req->ctx, req->arena, req->user_id,
		    req->route->pattern, req->query_string, &ce);
	else
		e = ce.body != NULL ? FIN_OK : FIN_E_NOT_FOUND;
	/* A hit is sent as the bytes stored: no parse, no second serialise. */
	if (e == FIN_OK) {
		resp_header(req, "X-Cache", "HIT");
		fin_metric_inc(FIN_M_CACHE_HIT);
		reply_json_text(req, 200, ce.body, strlen(ce.body));
		if (strlen(ce.tag) == ETAG_LEN)
			req->resp_etag = fin_arena_strdup(req->arena, ce.tag);
		return FIN_OK;
	}
	if ((e = fill(req, arg, &o)) != FIN_OK)
		return e;
	o = fin_arena_json(req->arena, o);
	if (o == NULL)
		return FIN_E_INTERNAL_ERROR;
	/* Serialised once, for the cache and for the client alike. */
	text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	/* Hashed once, for the cache and for this answer's ETag alike. */
	response_etag(text, len, etag);
	if ((req->cache_directives & FIN_CACHE_NO_STORE) == 0)
		fin_cache_put(req->ctx, req->user_id, &ce, text, etag);
	resp_header(req, "X-Cache", fresh ? "BYPASS" : "MISS");
	fin_metric_inc(fresh ? FIN_M_CACHE_BYPASS : FIN_M_CACHE_MISS);
	reply_json_text(req, 200, text, len);
	req->resp_etag = fin_arena_strdup(req->arena, etag);
	return FIN_OK;
}

static enum fin_err
fill_list(struct request *req, void *arg, struct json_object **o)
{
	return fin_txn_list(req->ctx, req->arena, arg, o);
}

enum fin_err
h_txn_list(struct request *req)
{
	struct fin_txn_query q;
	struct json_object *o;
	const char	*d;
	enum fin_err	 e;

	memset(&q, 0, sizeof(q));
	q.user_id = req->user_id;
	if (!request_limit(req, &q.limit))
		return FIN_E_VALIDATION_ERROR;
	if ((e = request_date_range(req, &q.from, &q.to)) != FIN_OK)
		return e;
	q.category = request_query(req, "category");
	if (q.category != NULL && (!fin_utf8_valid(q.category, strlen(q.category)) ||
	    fin_utf8_length(q.category, strlen(q.category)) > 64))
		return field_error(req, "category", "must be at most 64 characters");
	q.q = request_query(req, "q");
	if (q.q != NULL && (!fin_utf8_valid(q.q, strlen(q.q)) ||
	    fin_utf8_length(q.q, strlen(q.q)) > Q_MAX_CHARS))
		return field_error(req, "q", "must be at most 200 characters of text");
	if (q.q != NULL && q.q[0] == '\0')
		q.q = NULL;
	d = request_query(req, "deleted");
	if (d == NULL || strcmp(d, "exclude") == 0)
		q.deleted = FIN_DELETED_EXCLUDE;
	else if (strcmp(d, "include") == 0)
		q.deleted = FIN_DELETED_INCLUDE;
	else if (strcmp(d, "only") == 0)
		q.deleted = FIN_DELETED_ONLY;
	else
		return field_error(req, "deleted", "must be exclude, include or only");
	q.cursor = request_query(req, "cursor");
	if (q.cursor != NULL)  {
		/* Deeper pages are not cached: only the first is read often. */
		if ((e = fin_txn_list(req->ctx, req->arena, &q, &o)) != FIN_OK)
			return e;
		reply_json(req, 200, o);
		return FIN_OK;
	}
	return cached(req, fill_list, &q);
}

struct range {
	const char	*from, *to;
};

static enum fin_err
fill_summary(struct request *req, void *arg, struct json_object **o)
{
	struct range	*r = arg;

	return fin_txn_summary(req->ctx, req->user_id, r->from, r->to, o);
}

enum fin_err
h_txn_summary(struct request *req)
{
	struct range	 r;
	enum fin_err	 e;

	if ((e = request_date_range(req, &r.from, &r.to)) != FIN_OK)
		return e;
	return cached(req, fill_summary, &r);
}
