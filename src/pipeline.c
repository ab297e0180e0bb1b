/*
 * The ordered steps every request goes through before its handler, in one
 * place (as Redis's processCommand): API version, body size, route (404 /
 * 405 with Allow), CORS, rate limits, authentication and the response
 * cache look-up (one Redis round trip), body validation, the login email limit, handler, then the
 * response and one access-log line.  A step that fails stores the error
 * response and the rest are skipped.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define API_PREFIX	"/api/"

_Static_assert(M__MAX < FIN_METRICS_METHODS, "one metrics slot per method, plus unknown");

/*
 * Splits /api/vN/rest into the version and rest.  Anything that does not
 * start /api/vN is not ours (404); a version other than 1 is
 * UNSUPPORTED_API_VERSION, so that clients of a future API learn why.
 */
static enum fin_err
step_version(struct request *req, bool *root)
{
	const char	*p = req->uri_path, *v;
	size_t		 digits = 0;

	*root = false;
	if (strncmp(p, API_PREFIX, sizeof(API_PREFIX) - 1) != 0) {
		*root = true;		/* /metrics and friends */
		return FIN_OK;
	}
	v = p + sizeof(API_PREFIX) - 1;
	if (v[0] != 'v')
		return FIN_E_NOT_FOUND;
	while (v[1 + digits] >= '0' && v[1 + digits] <= '9')
		digits++;
	if (digits == 0 || (v[1 + digits] != '/' && v[1 + digits] != '\0'))
		return FIN_E_NOT_FOUND;
	if (digits != 1 || v[1] != '1')
		return FIN_E_UNSUPPORTED_API_VERSION;
	req->path = v + 2;
	return FIN_OK;
}

static enum fin_err
step_body_size(struct request *req)
{
	if (req->body_too_large)
		return FIN_E_PAYLOAD_TOO_LARGE;
	if (req->body_short)
		return FIN_E_INVALID_JSON;
	return FIN_OK;
}

static bool
origin_allowed(const struct request *req)
{
	const char	*list = req->cfg->cors_origins, *c;
	size_t		 n, olen = strlen(req->origin);

	if (olen == 0)
		return false;
	while (*list != '\0') {
		while (*list == ' ' || *list == ',')
			list++;
		c = strchr(list, ',');
		n = c != NULL ? (size_t)(c - list) : strlen(list);
		while (n > 0 && list[n - 1] == ' ')
			n--;
		if (n == olen && memcmp(list, req->origin, n) == 0)
			return true;
		if (c == NULL)
			break;
		list = c + 1;
	}
	return false;
}

/* CORS headers for an allowed origin only; every other origin gets none. */
static void
step_cors(struct request *req)
{
	resp_header(req, "Vary", "Origin");
	if (!origin_allowed(req))
		return;
	resp_header(req, "Access-Control-Allow-Origin", req->origin);
	resp_header(req, "Access-Control-Expose-Headers",
	    "X-Request-Id, ETag, Retry-After, RateLimit-Limit, "
	    "RateLimit-Remaining, RateLimit-Reset");
}

static enum fin_err
step_route(struct request *req, bool root)
{
	bool		 allow[M__MAX];
	char		 allow_hdr[128];
	enum route_match m;

	m = router_match(routes, nroutes, req->method, req->path, root,
	    &req->route, req->params, &req->nparams, req->arena, allow);
	if (m == ROUTE_NO_PATH)
		return FIN_E_NOT_FOUND;
	if (m == ROUTE_FOUND) {
		if ((req->route->flags & R_TEST_ONLY) &&
		    req->cfg->env != FIN_ENV_TEST) {
			req->route = NULL;
			return FIN_E_NOT_FOUND;
		}
		return FIN_OK;
	}
	router_allow_header(allow, allow_hdr, sizeof(allow_hdr));
	resp_header(req, "Allow", fin_arena_strdup(req->arena, allow_hdr));
	if (req->method == M_OPTIONS) {
		/* A preflight: answer it here, handlers never see OPTIONS. */
		if (origin_allowed(req)) {
			resp_header(req, "Access-Control-Allow-Methods",
			    fin_arena_strdup(req->arena, allow_hdr));
			resp_header(req, "Access-Control-Allow-Headers",
			    "Authorization, Content-Type, Idempotency-Key, X-Request-Id");
			resp_header(req, "Access-Control-Max-Age", "600");
		}
		reply_empty(req, 204);
		return FIN_OK;
	}
	return FIN_E_METHOD_NOT_ALLOWED;
}

/* The most constraining limit that was checked, for the RateLimit-* headers. */
static void
ratelimit_headers(struct request *req, const struct fin_gate_result *g)
{
	const struct fin_limit_result *best = NULL;
	int		 k;

	for (k = 0; k < FIN_LIMIT__MAX; k++) {
		const struct fin_limit_result *l = &g->limits[k];

		if (!l->checked)
			continue;
		if (best == NULL || (!l->allowed && best->allowed) ||
		    (l->allowed == best->allowed && l->remaining < best->remaining))
			best = l;
	}
	if (best == NULL)
		return;
	resp_header(req, "RateLimit-Limit",
	    fin_arena_printf(req->arena, "%lld", (long long)best->limit));
	resp_header(req, "RateLimit-Remaining",
	    fin_arena_printf(req->arena, "%lld", (long long)best->remaining));
	resp_header(req, "RateLimit-Reset",
	    fin_arena_printf(req->arena, "%lld", (long long)best->reset));
	if (!best->allowed)
		resp_header(req, "Retry-After",
		    fin_arena_printf(req->arena, "%lld", (long long)best->retry_after));
}

static const char *
bearer(const struct request *req)
{
	const char	*h = req->authorization;

	if (strncasecmp(h, "Bearer ", 7) != 0)
		return "";
	h += 7;
	while (*h == ' ')
		h++;
	return h;
}

/*
 * Rate limits and authentication in one Redis round trip (lib/gate.c):
 * the client IP's limit on every route, the route's own limit class, and
 * for R_AUTH/R_ADMIN routes a valid access token whose session is alive,
 * then the per-user limit.  Every authentication failure is the same 401.
 */
static enum fin_err
step_gate(struct request *req)
{
	struct fin_gate	 in;
	struct fin_gate_result g;
	struct fin_user	 u;
	unsigned	 flags = req->route->flags;
	enum fin_err	 e;

	memset(&in, 0, sizeof(in));
	in.ip = req->ip;
	if ((flags & R_NO_RL) == 0)
		in.limits |= 1u << FIN_LIMIT_IP;
	if (flags & R_RL_SIGNUP)
		in.limits |= 1u << FIN_LIMIT_SIGNUP_IP;
	if (flags & R_RL_LOGIN)
		in.limits |= 1u << FIN_LIMIT_LOGIN_IP;
	if (flags & (R_AUTH | R_ADMIN)) {
		in.token = bearer(req);
		in.limits |= 1u << FIN_LIMIT_USER;
	}
	/*
	 * The cached page rides in the same round trip; it is used only once
	 * every step below has passed.  Pages after the first are not cached;
	 * a request that may neither read nor store a page needs nothing.
	 */
	if ((flags & R_CACHED) && request_query(req, "cursor") == NULL &&
	    req->cache_directives != (FIN_CACHE_NO_READ | FIN_CACHE_NO_STORE)) {
		in.cache_kind = req->route->pattern;
		in.cache_query = req->query_string;
		in.arena = req->arena;
		in.cache_generation_only =
		    (req->cache_directives & FIN_CACHE_NO_READ) != 0;
	}
	if ((e = fin_gate_check(req->ctx, &in, &g)) != FIN_OK)
		return e;
	req->gate = g;
	ratelimit_headers(req, &g);
	if (g.denied == FIN_LIMIT_IP || g.denied == FIN_LIMIT_SIGNUP_IP ||
	    g.denied == FIN_LIMIT_LOGIN_IP)
		return FIN_E_RATE_LIMITED;
	if (g.auth != FIN_OK)
		return g.auth;
	if (g.denied >= 0)
		return FIN_E_RATE_LIMITED;
	if ((flags & (R_AUTH | R_ADMIN)) == 0)
		return FIN_OK;
	req->principal = g.principal;
	req->user_id = req->principal.user_id;
	if ((flags & R_ADMIN) == 0)
		return FIN_OK;
	/* Roles are read from PostgreSQL: a demotion takes effect at once. */
	if ((e = fin_auth_me(req->ctx, &req->principal, &u)) != FIN_OK)
		return e;
	return strcmp(u.role, "admin") == 0 ? FIN_OK : FIN_E_FORBIDDEN;
}

/* The per-email login limit needs the validated email, so it runs last. */
static enum fin_err
step_login_email_limit(struct request *req)
{
	const struct fin_value *email;
	struct fin_gate	 in;
	struct fin_gate_result g;
	enum fin_err	 e;

	if ((req->route->flags & R_RL_LOGIN) == 0)
		return FIN_OK;
	email = request_field(req, "email");
	if (email == NULL)
		return FIN_OK;
	memset(&in, 0, sizeof(in));
	in.ip = req->ip;
	in.email = email->s;
	in.limits = 1u << FIN_LIMIT_LOGIN_EMAIL;
	if ((e = fin_gate_check(req->ctx, &in, &g)) != FIN_OK)
		return e;
	/* The headers describe the tightest of all the limits checked. */
	req->gate.limits[FIN_LIMIT_LOGIN_EMAIL] = g.limits[FIN_LIMIT_LOGIN_EMAIL];
	ratelimit_headers(req, &req->gate);
	return g.denied >= 0 ? FIN_E_RATE_LIMITED : FIN_OK;
}

static enum fin_err
step_parse_body(struct request *req)
{
	const char	*ct = req->content_type;
	struct json_object *fields;
	enum fin_err	 e;

	if (req->route->body == NULL)
		return FIN_OK;
	/* application/json, optionally with parameters (charset=utf-8). */
	if (req->body_len > 0 && (strncasecmp(ct, "application/json", 16) != 0 ||
	    (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')))
		return FIN_E_UNSUPPORTED_MEDIA_TYPE;
	e = fin_json_parse_object(req->arena, req->body, req->body_len,
	    &req->json);
	if (e != FIN_OK)
		return e;
	e = fin_validate(req->arena, req->route->body, req->json, req->values,
	    &fields);
	if (e == FIN_E_VALIDATION_ERROR) {
		struct json_object *extra;

		extra = fin_arena_json(req->arena, json_object_new_object());
		if (extra == NULL)
			return FIN_E_INTERNAL_ERROR;
		json_object_object_add(extra, "fields", json_object_get(fields));
		http_error(req, e, extra, NULL);
	}
	return e;
}

static void
log_access(struct request *req)
{
	struct json_object *f;
	int64_t		 us, ms;
	size_t		 route;

	us = fin_now_us() - req->started_us;
	ms = us / 1000;
	/* Slot 0 counts requests that matched no route. */
	route = req->route != NULL ? (size_t)(req->route - routes) + 1 : 0;
	fin_metrics_request(route, req->method < M__MAX ? (size_t)req->method :
	    FIN_METRICS_METHODS - 1, req->status, us);
	if (req->status == 429)
		fin_metric_inc(FIN_M_RATE_LIMITED);
	/* Most production logs skip info lines: do not build one for nothing. */
	if (!fin_log_enabled(req->status >= 500 ? FIN_LOG_ERROR : FIN_LOG_INFO))
		return;
	f = json_object_new_object();
	if (f == NULL)
		return;
	json_object_object_add(f, "request_id", json_object_new_string(req->request_id));
	json_object_object_add(f, "method", json_object_new_string(
	    req->method < M__MAX ? method_name(req->method) : "OTHER"));
	json_object_object_add(f, "route", req->route != NULL ?
	    json_object_new_string(req->route->pattern) : NULL);
	json_object_object_add(f, "status", json_object_new_int(req->status));
	json_object_object_add(f, "duration_ms", json_object_new_int64(ms));
	json_object_object_add(f, "user_id", req->user_id != NULL ?
	    json_object_new_string(req->user_id) : NULL);
	json_object_object_add(f, "ip", json_object_new_string(req->ip));
	fin_log_json(req->status >= 500 ? FIN_LOG_ERROR : FIN_LOG_INFO,
	    "request", f);
	json_object_put(f);
}

/*
 * A request refused while it was read (worker.c: a malformed query string)
 * comes with its error stored: no step runs, but it still gets CORS, the
 * common headers, its log line and its count (as an unmatched route).
 */
void
pipeline_run(struct request *req)
{
	enum fin_err	 e = FIN_OK;
	bool		 root = false;

	if (!req->has_response)
		e = step_version(req, &root);
	if (e == FIN_OK && !req->has_response)
		e = step_body_size(req);
	step_cors(req);
	if (e == FIN_OK && !req->has_response)
		e = step_route(req, root);
	if (e == FIN_OK && !req->has_response)
		e = step_gate(req);
	if (e == FIN_OK && !req->has_response)
		e = step_parse_body(req);
	if (e == FIN_OK && !req->has_response)
		e = step_login_email_limit(req);
	if (e == FIN_OK && !req->has_response)
		e = req->route->handler(req);
	if (e != FIN_OK && !req->has_response)
		http_error(req, e, NULL, NULL);
	response_finish(req);
	log_access(req);
}
