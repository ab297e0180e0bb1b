/*
 * Status, headers and JSON out.  Handlers store their response with
 * reply_json()/reply_empty()/http_error(); response_finish() adds the
 * headers every response carries, the ETag and the 304, and writes it.
 * http_error() is the only place an error body is made.
 */
#include "app.h"

#include <errno.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <sodium.h>

#define HEADER_BLOCK_MAX	4096

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 423: return "Locked";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default:  return "Unknown";
	}
}

/* Replaces a header of the same name (case-insensitive), else appends. */
void
resp_header(struct request *req, const char *name, const char *value)
{
	size_t	 i;

	if (value == NULL)
		return;
	for (i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0) {
			req->headers[i].value = value;
			return;
		}
	if (req->nheaders == MAX_RESP_HEADERS) {
		fin_log(FIN_LOG_ERROR, "response_headers",
		    "could not add header %s: more than %d", name,
		    MAX_RESP_HEADERS);
		return;
	}
	req->headers[req->nheaders].name = name;
	req->headers[req->nheaders].value = value;
	req->nheaders++;
}

static const char *
find_header(const struct request *req, const char *name)
{
	size_t	 i;

	for (i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

void
reply_json(struct request *req, int status, struct json_object *body)
{
	req->status = status;
	req->resp_body = fin_arena_json(req->arena, body);
	req->has_response = true;
}

void
reply_json_text(struct request *req, int status, const char *body, size_t len)
{
	req->status = status;
	req->resp_body = NULL;
	req->resp_raw = body;
	req->resp_raw_len = len;
	req->resp_etag = NULL;
	req->has_response = true;
}

void
reply_empty(struct request *req, int status)
{
	req->status = status;
	req->resp_body = NULL;
	req->has_response = true;
}

void
http_error(struct request *req, enum fin_err e, struct json_object *fields,
    const char *message)
{
	struct json_object *o;

	req->error = e;
	req->resp_raw = NULL;
	o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(
	    message != NULL ? message : fin_err_message(e)));
	json_object_object_add(o, "code", json_object_new_string(fin_err_code(e)));
	json_object_object_add(o, "request_id",
	    json_object_new_string(req->request_id));
	if (fields != NULL) {
		/* Extra members of an error are named by the caller's object. */
		json_object_object_foreach(fields, k, v)
			json_object_object_add(o, k, json_object_get(v));
	}
	switch (e) {
	case FIN_E_UNAUTHORIZED:
		resp_header(req, "WWW-Authenticate", "Bearer");
		break;
	case FIN_E_RATE_LIMITED:
	case FIN_E_SERVICE_UNAVAILABLE:
		if (find_header(req, "Retry-After") == NULL)
			resp_header(req, "Retry-After",
			    e == FIN_E_RATE_LIMITED ? "60" : "1");
		break;
	default:
		break;
	}
	reply_json(req, fin_err_status(e), o);
}

static bool
put(struct request *req, const char *s, size_t n)
{
	if (n == 0)
		return true;
	return FCGX_PutStr(s, (int)n, req->fcgx->out) == (int)n;
}

/* Strong ETag: a hash of the exact bytes, so equal bodies share a tag. */
void
response_etag(const char *body, size_t len, char out[ETAG_LEN + 1])
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;

	memset(md, 0, sizeof(md));
	EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL);
	out[0] = '"';
	sodium_bin2hex(out + 1, ETAG_LEN - 1, md, (ETAG_LEN - 2) / 2);
	out[ETAG_LEN - 1] = '"';
	out[ETAG_LEN] = '\0';
}

/* If-None-Match: "*" or a list of tags, weak ones compared weakly. */
static bool
etag_matches(const char *inm, const char *etag)
{
	const char	*p = inm;
	size_t		 n = strlen(etag);

	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '*')
			return true;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' ||
		    p[n] == ' '))
			return true;
		while (*p != '\0' && *p != ',')
			p++;
	}
	return false;
}

static void
common_headers(struct request *req, const char *content_type)
{
	resp_header(req, "X-Request-Id", req->request_id);
	resp_header(req, "API-Version", "1");
	resp_header(req, "X-Content-Type-Options", "nosniff");
	if (content_type != NULL)
		resp_header(req, "Content-Type", content_type);
	if (find_header(req, "Cache-Control") == NULL) {
		if (req->route != NULL && (req->route->flags & R_TOKENS))
			resp_header(req, "Cache-Control", "no-store");
		else if (req->user_id != NULL)
			resp_header(req, "Cache-Control", "private, no-cache");
		else
			resp_header(req, "Cache-Control", "no-store");
	}
}

static bool
write_head(struct request *req)
{
	char	 buf[HEADER_BLOCK_MAX];
	size_t	 len = 0, i;
	int	 n;

	n = snprintf(buf, sizeof(buf), "Status: %d %s\r\n", req->status,
	    reason(req->status));
	len = (size_t)n;
	for (i = 0; i < req->nheaders; i++) {
		/* CR or LF in a value would split the header: never write it. */
		if (strpbrk(req->headers[i].value, "\r\n") != NULL)
			continue;
		n = snprintf(buf + len, sizeof(buf) - len, "%s: %s\r\n",
		    req->headers[i].name, req->headers[i].value);
		if (n < 0 || (size_t)n >= sizeof(buf) - len)
			return false;
		len += (size_t)n;
	}
	if (len + 2 >= sizeof(buf))
		return false;
	buf[len++] = '\r';
	buf[len++] = '\n';
	req->responded = true;
	return put(req, buf, len);
}

void
response_finish(struct request *req)
{
	const char	*body = NULL;
	size_t		 len = 0;
	char		 etag[ETAG_LEN + 1];

	if (req->responded)
		return;
	if (!req->has_response)
		http_error(req, FIN_E_INTERNAL_ERROR, NULL, NULL);
	if (req->resp_raw != NULL) {
		body = req->resp_raw;
		len = req->resp_raw_len;
	} else if (req->resp_body != NULL) {
		body = json_object_to_json_string_length(req->resp_body,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
		if (body == NULL) {
			body = "";
			len = 0;
		}
	}
	if ((req->method == M_GET || req->method == M_HEAD) &&
	    req->status == 200 && body != NULL) {
		/* A cached page brings the tag it was stored with. */
		if (req->resp_raw != NULL && req->resp_etag != NULL)
			snprintf(etag, sizeof(etag), "%s", req->resp_etag);
		else
			response_etag(body, len, etag);
		resp_header(req, "ETag", fin_arena_strdup(req->arena, etag));
		if (req->if_none_match[0] != '\0' &&
		    etag_matches(req->if_none_match, etag)) {
			req->status = 304;
			body = NULL;
			len = 0;
		}
	}
	common_headers(req, body != NULL ? "application/json; charset=utf-8" : NULL);
	/* Known length: nginx passes it on instead of chunking the body. */
	if (body != NULL)
		resp_header(req, "Content-Length",
		    fin_arena_printf(req->arena, "%zu", len));
	if (!write_head(req))
		return;
	if (body != NULL && req->method != M_HEAD)
		put(req, body, len);
}

bool
resp_stream_begin(struct request *req, int status, const char *content_type)
{
	req->status = status;
	req->has_response = true;
	common_headers(req, content_type);
	return write_head(req);
}

/*
 * A streamed body that cannot be finished (its source failed half way):
 * the stream is marked failed, so the worker cuts the connection instead
 * of ending the response cleanly, and the client sees a transfer error,
 * not a short file that looks whole (src/worker.c, cut_short).
 */
void
resp_stream_abort(struct request *req)
{
	if (req->fcgx->out->FCGI_errno == 0)
		req->fcgx->out->FCGI_errno = EIO;
}

bool
resp_stream_write(struct request *req, const char *buf, size_t len)
{
	if (!put(req, buf, len))
		return false;
	/* Push each chunk to nginx so that memory stays flat. */
	return FCGX_FFlush(req->fcgx->out) == 0;
}
