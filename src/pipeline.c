/*
 * The ordered steps every request goes through before its handler, in one
 * place (as Redis's processCommand): API version, body size, route (404 /
 * 405 with Allow), CORS, authentication, body validation, handler, then the
 * response and one access-log line.  A step that fails stores the error
 * response and the rest are skipped.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define API_PREFIX	"/api/"

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

/*
 * Bearer authentication for R_AUTH and R_ADMIN routes: a valid, unexpired
 * access token whose session is alive.  Every failure is the same 401.
 */
static enum fin_err
step_auth(struct request *req)
{
	const char	*h = req->authorization;
	struct fin_user	 u;
	enum fin_err	 e;

	if ((req->route->flags & (R_AUTH | R_ADMIN)) == 0)
		return FIN_OK;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return FIN_E_UNAUTHORIZED;
	h += 7;
	while (*h == ' ')
		h++;
	e = fin_auth_authenticate(req->ctx, h, &req->principal);
	if (e != FIN_OK)
		return e;
	req->user_id = req->principal.user_id;
	if ((req->route->flags & R_ADMIN) == 0)
		return FIN_OK;
	/* Roles are read from PostgreSQL: a demotion takes effect at once. */
	if ((e = fin_auth_me(req->ctx, &req->principal, &u)) != FIN_OK)
		return e;
	return strcmp(u.role, "admin") == 0 ? FIN_OK : FIN_E_FORBIDDEN;
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
	int64_t		 ms;

	ms = fin_now_ms() - req->started_ms;
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

void
pipeline_run(struct request *req)
{
	enum fin_err	 e;
	bool		 root;

	e = step_version(req, &root);
	if (e == FIN_OK)
		e = step_body_size(req);
	step_cors(req);
	if (e == FIN_OK)
		e = step_route(req, root);
	if (e == FIN_OK && !req->has_response)
		e = step_auth(req);
	if (e == FIN_OK && !req->has_response)
		e = step_parse_body(req);
	if (e == FIN_OK && !req->has_response)
		e = req->route->handler(req);
	if (e != FIN_OK && !req->has_response)
		http_error(req, e, NULL, NULL);
	response_finish(req);
	log_access(req);
}
