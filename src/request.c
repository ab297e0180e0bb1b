/*
 * The CGI environment in: method, path, query, headers, client address and
 * a body capped at BODY_MAX.  Everything here is untrusted; values are
 * copied into the request arena and checked before any handler sees them.
 */
#include "app.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <string.h>

#include <sodium.h>

static const char *const method_names[M__MAX] = {
	"GET",			/* M_GET */
	"HEAD",			/* M_HEAD */
	"POST",			/* M_POST */
	"PUT",			/* M_PUT */
	"PATCH",		/* M_PATCH */
	"DELETE",		/* M_DELETE */
	"OPTIONS",		/* M_OPTIONS */
};

const char *
method_name(enum method m)
{
	return m < M__MAX ? method_names[m] : "?";
}

static enum method
parse_method(const char *s)
{
	int	 m;

	for (m = 0; m < M__MAX; m++)
		if (strcmp(s, method_names[m]) == 0)
			return (enum method)m;
	return M__MAX;
}

static const char *
param(FCGX_Request *f, const char *name)
{
	const char	*v;

	v = FCGX_GetParam(name, f->envp);
	return v != NULL ? v : "";
}

/*
 * Decodes application/x-www-form-urlencoded into *out; NULL, or why it
 * cannot (a bad %XX, or a %00 that would cut the value short).
 */
static const char *
form_decode(struct fin_arena *a, const char *s, size_t n, const char **out)
{
	char	*d;
	size_t	 i, j = 0;

	d = fin_arena_alloc(a, n + 1);
	if (d == NULL)
		return "could not be stored";
	for (i = 0; i < n; i++) {
		if (s[i] == '+')
			d[j++] = ' ';
		else if (s[i] == '%') {
			unsigned char	 c;
			size_t		 len;

			if (i + 2 >= n || sodium_hex2bin(&c, 1, s + i + 1, 2,
			    NULL, &len, NULL) != 0 || len != 1)
				return "has a % not followed by two hex digits";
			if (c == 0)
				return "must not contain %00";
			d[j++] = (char)c;
			i += 2;
		} else
			d[j++] = s[i];
	}
	d[j] = '\0';
	*out = d;
	return NULL;
}

/*
 * Splits and decodes a query string into at most MAX_QUERY_PARAMS pairs.
 * NULL when it is well formed; else why not, and *field names the
 * parameter ("query" when none can be named).
 */
const char *
query_parse(struct fin_arena *a, const char *qs, struct query_param *out,
    size_t *n, const char **field)
{
	const char	*p = qs, *amp, *eq, *why;

	*n = 0;
	*field = "query";
	while (*p != '\0') {
		size_t	 len;

		amp = strchr(p, '&');
		len = amp != NULL ? (size_t)(amp - p) : strlen(p);
		if (len > 0) {
			struct query_param *q;

			_Static_assert(MAX_QUERY_PARAMS == 32, "the text below");
			if (*n == MAX_QUERY_PARAMS)
				return "must have at most 32 parameters";
			q = &out[*n];
			eq = memchr(p, '=', len);
			if ((why = form_decode(a, p, eq != NULL ?
			    (size_t)(eq - p) : len, &q->name)) != NULL)
				return why;
			q->value = "";
			if (eq != NULL && (why = form_decode(a, eq + 1,
			    len - (size_t)(eq - p) - 1, &q->value)) != NULL) {
				/* Echoed in the error: only a sane name. */
				if (strlen(q->name) <= 64 &&
				    fin_utf8_valid(q->name, strlen(q->name)))
					*field = q->name;
				return why;
			}
			(*n)++;
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	return NULL;
}

/* The first value of a query parameter, or NULL. */
const char *
request_query(const struct request *req, const char *name)
{
	size_t	 i;

	for (i = 0; i < req->nquery; i++)
		if (strcmp(req->query[i].name, name) == 0)
			return req->query[i].value;
	return NULL;
}

const char *
request_param(const struct request *req, size_t i)
{
	return i < req->nparams ? req->params[i] : NULL;
}

/* True when addr is one of the comma-separated entries of list. */
static bool
in_list(const char *list, const char *addr, size_t addrlen)
{
	const char	*p = list, *c;

	while (*p != '\0') {
		size_t	 n;

		while (*p == ' ')
			p++;
		c = strchr(p, ',');
		n = c != NULL ? (size_t)(c - p) : strlen(p);
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n == addrlen && n > 0 && memcmp(p, addr, n) == 0)
			return true;
		if (c == NULL)
			break;
		p = c + 1;
	}
	return false;
}

/* True when the n bytes at s are an IPv4 or IPv6 address. */
static bool
is_ip(const char *s, size_t n)
{
	char		 buf[INET6_ADDRSTRLEN];
	unsigned char	 bin[sizeof(struct in6_addr)];

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET, buf, bin) == 1 ||
	    inet_pton(AF_INET6, buf, bin) == 1;
}

/*
 * REMOTE_ADDR, unless it is a trusted proxy: then the right-most
 * X-Forwarded-For entry that is not itself a trusted proxy, because every
 * entry left of it may be forged by the client.  When that entry is no
 * address, REMOTE_ADDR again: looking further left would let the client
 * choose its own address (and its rate limit key).
 */
static const char *
client_ip(struct request *req, FCGX_Request *f)
{
	const char	*remote = param(f, "REMOTE_ADDR");
	const char	*xff = param(f, "HTTP_X_FORWARDED_FOR");
	const char	*trusted = req->cfg->trusted_proxies;
	const char	*end, *start, *s;
	size_t		 n;

	if (trusted[0] == '\0' || xff[0] == '\0' ||
	    !in_list(trusted, remote, strlen(remote)))
		return remote;
	for (end = xff + strlen(xff);; end = start - 1) {
		for (start = end; start > xff && start[-1] != ','; start--)
			;
		for (s = start; s < end && (*s == ' ' || *s == '\t'); s++)
			;
		for (n = (size_t)(end - s); n > 0 &&
		    (s[n - 1] == ' ' || s[n - 1] == '\t'); n--)
			;
		if (n > 0 && !in_list(trusted, s, n))
			return is_ip(s, n) ?
			    fin_arena_strndup(req->arena, s, n) : remote;
		if (start == xff)
			return remote;
	}
}

static void
read_body(struct request *req, FCGX_Request *f)
{
	const char	*cl = param(f, "CONTENT_LENGTH");
	int64_t		 want;
	int		 n;

	if (cl[0] == '\0')
		return;
	if (!fin_parse_int64(cl, 0, INT64_MAX, &want)) {
		req->body_short = true;
		return;
	}
	if (want > BODY_MAX) {
		req->body_too_large = true;
		return;
	}
	if (want == 0)
		return;
	req->body = fin_arena_alloc(req->arena, (size_t)want + 1);
	if (req->body == NULL) {
		req->body_too_large = true;
		return;
	}
	while (req->body_len < (size_t)want) {
		n = FCGX_GetStr(req->body + req->body_len,
		    (int)((size_t)want - req->body_len), f->in);
		if (n <= 0)
			break;
		req->body_len += (size_t)n;
	}
	req->body[req->body_len] = '\0';
	if (req->body_len != (size_t)want)
		req->body_short = true;
}

enum fin_err
request_read(struct request *req, FCGX_Request *f)
{
	const char	*rid;

	req->fcgx = f;
	req->method_name = fin_arena_strdup(req->arena, param(f, "REQUEST_METHOD"));
	req->method = parse_method(req->method_name);
	req->uri_path = param(f, "PATH_INFO");
	if (req->uri_path[0] == '\0')
		req->uri_path = param(f, "DOCUMENT_URI");
	req->uri_path = fin_arena_strdup(req->arena, req->uri_path);
	req->path = req->uri_path;
	req->query_string = fin_arena_strdup(req->arena, param(f, "QUERY_STRING"));
	req->user_agent = fin_arena_strdup(req->arena, param(f, "HTTP_USER_AGENT"));
	req->content_type = fin_arena_strdup(req->arena, param(f, "CONTENT_TYPE"));
	req->origin = fin_arena_strdup(req->arena, param(f, "HTTP_ORIGIN"));
	req->if_none_match = fin_arena_strdup(req->arena, param(f, "HTTP_IF_NONE_MATCH"));
	req->authorization = fin_arena_strdup(req->arena, param(f, "HTTP_AUTHORIZATION"));
	rid = FCGX_GetParam("HTTP_IDEMPOTENCY_KEY", f->envp);
	req->idempotency_key = rid != NULL ? fin_arena_strdup(req->arena, rid) : NULL;
	req->cache_directives = fin_cache_directives(
	    FCGX_GetParam("HTTP_CACHE_CONTROL", f->envp),
	    FCGX_GetParam("HTTP_PRAGMA", f->envp));
	req->ip = client_ip(req, f);
	req->ip = fin_arena_strdup(req->arena, req->ip != NULL ? req->ip : "");

	/* The caller's id when it is safe to echo and log, else a fresh one. */
	rid = param(f, "HTTP_X_REQUEST_ID");
	if (fin_valid_request_id(rid))
		snprintf(req->request_id, sizeof(req->request_id), "%s", rid);
	else
		fin_uuid_v4(req->request_id);

	if (req->method_name == NULL || req->uri_path == NULL ||
	    req->query_string == NULL || req->user_agent == NULL ||
	    req->content_type == NULL || req->origin == NULL ||
	    req->if_none_match == NULL || req->authorization == NULL ||
	    req->ip == NULL)
		return FIN_E_INTERNAL_ERROR;
	req->client.ip = req->ip;
	req->client.user_agent = req->user_agent;
	req->client.request_id = req->request_id;
	read_body(req, f);
	req->query_fault = query_parse(req->arena, req->query_string,
	    req->query, &req->nquery, &req->query_fault_field);
	if (req->query_fault != NULL)
		return FIN_E_VALIDATION_ERROR;
	return FIN_OK;
}

const struct fin_value *
request_field(const struct request *req, const char *name)
{
	const struct fin_field *f;
	size_t		 i;

	if (req->route == NULL || req->route->body == NULL)
		return NULL;
	for (f = req->route->body, i = 0; f->name != NULL; f++, i++)
		if (strcmp(f->name, name) == 0)
			return req->values[i].present ? &req->values[i] : NULL;
	return NULL;
}

bool
request_limit(struct request *req, int64_t *limit)
{
	const char	*v = request_query(req, "limit");

	*limit = FIN_PAGE_DEFAULT;
	if (v == NULL || fin_parse_int64(v, 1, 200, limit))
		return true;
	(void)field_error(req, "limit", "must be an integer from 1 to 200");
	return false;
}

enum fin_err
field_error(struct request *req, const char *field, const char *why)
{
	struct json_object *extra, *fields;

	extra = fin_arena_json(req->arena, json_object_new_object());
	if (extra == NULL)
		return FIN_E_INTERNAL_ERROR;
	fields = json_object_new_object();
	json_object_object_add(fields, field, json_object_new_string(why));
	json_object_object_add(extra, "fields", fields);
	http_error(req, FIN_E_VALIDATION_ERROR, extra, NULL);
	return FIN_E_VALIDATION_ERROR;
}

/* ?from= and ?to=: optional real dates, from <= to; 400 stored otherwise. */
enum fin_err
request_date_range(struct request *req, const char **from, const char **to)
{
	*from = request_query(req, "from");
	*to = request_query(req, "to");
	if (*from != NULL && !fin_valid_date(*from))
		return field_error(req, "from", "must be a real date YYYY-MM-DD");
	if (*to != NULL && !fin_valid_date(*to))
		return field_error(req, "to", "must be a real date YYYY-MM-DD");
	if (*from != NULL && *to != NULL && strcmp(*from, *to) > 0)
		return field_error(req, "to", "must not be before from");
	return FIN_OK;
}
