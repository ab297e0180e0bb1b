/*
 * runner: plays HTTP case files against a running libfinance (nginx in
 * front of the workers).  A case file is one short scenario, a few
 * exchanges run in order; it passes when every expectation holds.  The
 * format is described in tests/http/README.md.
 *
 *	runner [-v] BASE_URL case-file...
 *
 * Prints "ok N - name (file)" or "not ok ..." per case, indented
 * diagnostics after a failure (always with -v), then "N passed, N failed";
 * exits 1 when a case failed, 2 on bad arguments.  Each file is read twice:
 * a dry pass that only checks the syntax, so that a bad line fails the
 * case with file:line before any request has changed the server's state,
 * then the pass that sends.
 */
#define _POSIX_C_SOURCE 200809L

#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json.h>
#include <sodium.h>

#define CASE_FILE_MAX	(1024 * 1024)	/* a case is a short story */
#define LINE_MAX_LEN	16384		/* longer: a <<TAG body */
#define MAX_VARS	64
#define PATH_LEN_MAX	256		/* JSON paths */
#define REPEAT_MAX	1000
#define TIMEOUT_DEFAULT	30
#define REQ_BODY_MAX	(64 * 1024 * 1024)
#define RESP_BODY_MAX	(16 * 1024 * 1024)
#define HEAD_MAX	(64 * 1024)
#define TEXT_MAX	(1024 * 1024)	/* a value after substitution */
#define DIAG_MAX	(256 * 1024)
#define SHOW_MAX	2048		/* bytes of a response body shown */

/* A growable string that refuses to grow past max; always NUL-terminated. */
struct buf {
	char	*p;
	size_t	 len, cap, max;
	bool	 overflow;
};

enum op { OP_EQ, OP_NE, OP_MATCH, OP_NOMATCH, OP_EXISTS, OP_ABSENT,
	OP_CONTAINS, OP_NOCONTAINS, OP_EMPTY, OP__MAX };

static const char *const op_names[OP__MAX] = {
	"=",			/* OP_EQ */
	"!=",			/* OP_NE */
	"~",			/* OP_MATCH */
	"!~",			/* OP_NOMATCH */
	"exists",		/* OP_EXISTS */
	"absent",		/* OP_ABSENT */
	"contains",		/* OP_CONTAINS */
	"!contains",		/* OP_NOCONTAINS */
	"empty",		/* OP_EMPTY */
};

#define BIT(op)		(1u << (op))
#define VALUE_OPS	(BIT(OP_EQ) | BIT(OP_NE) | BIT(OP_MATCH) | \
			 BIT(OP_NOMATCH) | BIT(OP_EXISTS) | BIT(OP_ABSENT))
#define BODY_OPS	(BIT(OP_MATCH) | BIT(OP_NOMATCH) | BIT(OP_CONTAINS) | \
			 BIT(OP_NOCONTAINS) | BIT(OP_EMPTY))
#define NO_VALUE_OPS	(BIT(OP_EXISTS) | BIT(OP_ABSENT) | BIT(OP_EMPTY))

/* Everything one case run owns; the exchange in hand is reset per request. */
struct run {
	const char	*base;
	bool		 verbose;
	CURL		*curl;
	struct buf	 diag;

	const char	*file;
	char		*text;		/* the file, split in place */
	char		**lines;
	size_t		 nlines, ln;	/* ln: the next line */
	bool		 dry;		/* the syntax-only pass */
	bool		 failed;	/* an expectation failed */
	char		 name[256];
	char		 random[17];
	char		*var_name[MAX_VARS], *var_value[MAX_VARS];
	size_t		 nvars;

	char		 method[16];	/* "": no exchange open */
	int		 req_line;
	struct buf	 url, body, head;	/* head: the response's */
	struct buf	 resp;		/* the response body */
	struct curl_slist *hl;
	bool		 has_body, has_ct, has_status, sent, last;
	long long	 repeat, iter, timeout;
	size_t		 checks_at;	/* its first expect/capture */
	long		 status;
	struct json_object *json;
	int		 json_state;	/* 0 untried, 1 JSON, -1 not */
};

/* ---------------------------------------------------------------- utilities */

static bool
buf_add(struct buf *b, const void *s, size_t n)
{
	size_t	 ncap;
	char	*np;

	if (b->overflow || n > b->max - b->len) {
		b->overflow = true;
		return false;
	}
	if (b->len + n + 1 > b->cap) {
		ncap = b->cap > 0 ? b->cap : 256;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (np == NULL) {
			b->overflow = true;
			return false;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return true;
}

static bool
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

/* Empties b but keeps its memory; b->p is "" afterwards. */
static void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->overflow = false;
	buf_add(b, "", 0);
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->overflow = false;
}

static void __attribute__((format(printf, 2, 0)))
buf_vfmt(struct buf *b, const char *fmt, va_list ap)
{
	char	 tmp[4096];
	int	 n;

	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	/* A long message is cut, never lost: diagnostics are best effort. */
	if (n >= 0)
		buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n :
		    sizeof(tmp) - 1);
}

static void __attribute__((format(printf, 2, 3)))
buf_fmt(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	buf_vfmt(b, fmt, ap);
	va_end(ap);
}

/* Shows bytes for a human: printable ASCII as is, the rest as \xHH. */
static void
buf_show(struct buf *b, const char *p, size_t n, const char *indent)
{
	size_t	 i, shown = n < SHOW_MAX ? n : SHOW_MAX;

	buf_str(b, indent);
	for (i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\n' && i + 1 < n)
			buf_fmt(b, "\n%s", indent);
		else if (c == '\t' || (c >= 0x20 && c < 0x7f))
			buf_add(b, &p[i], 1);
		else if (c != '\r' && c != '\n')
			buf_fmt(b, "\\x%02x", c);
	}
	if (shown < n)
		buf_fmt(b, " ... (%zu bytes in all)", n);
	buf_str(b, "\n");
}

/*
 * Notes a problem in the diagnostics.  A syntax error (bad) names
 * file:line and returns false: the case stops.  A failed expectation
 * (fail) names the line and returns true: the exchange's other checks go
 * on, and the case stops after it.
 */
#define bad(run, ...)	note((run), true, __VA_ARGS__)
#define fail(run, ...)	note((run), false, __VA_ARGS__)

static bool __attribute__((format(printf, 3, 4)))
note(struct run *run, bool syntax, const char *fmt, ...)
{
	va_list	 ap;

	if (!syntax)
		buf_fmt(&run->diag, "    line %zu: ", run->ln);
	else if (run->ln > 0)
		buf_fmt(&run->diag, "    %s:%zu: ", run->file, run->ln);
	else
		buf_fmt(&run->diag, "    %s: ", run->file);
	va_start(ap, fmt);
	buf_vfmt(&run->diag, fmt, ap);
	va_end(ap);
	buf_str(&run->diag, "\n");
	run->failed |= !syntax;
	return !syntax;
}

/* Decimal digits only, no sign or space, within [min, max] (max >= 0). */
static bool
num(const char *s, long long min, long long max, long long *out)
{
	long long	 v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (max - (*s - '0')) / 10)
			return false;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return v >= min;
}

static bool
is_name(const char *s)
{
	return *s != '\0' && s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_")] == '\0';
}

/* The next blank-separated word, NUL-terminated in place. */
static char *
word(char **pp)
{
	char	*p = *pp + strspn(*pp, " \t"), *w = p;

	p += strcspn(p, " \t");
	if (*p != '\0')
		*p++ = '\0';
	*pp = p;
	return w;
}

/* The rest of the line without surrounding blanks. */
static char *
rest(char *p)
{
	char	*e;

	p += strspn(p, " \t");
	e = p + strlen(p);
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return p;
}

/* ---------------------------------------------------------------- variables */

static bool
var_set(struct run *run, const char *name, const char *value)
{
	size_t	 i;
	char	*v = strdup(value);

	for (i = 0; v != NULL && i < run->nvars; i++)
		if (strcmp(run->var_name[i], name) == 0) {
			free(run->var_value[i]);
			run->var_value[i] = v;
			return true;
		}
	if (v == NULL || run->nvars == MAX_VARS) {
		free(v);
		return false;
	}
	run->var_name[run->nvars] = strdup(name);
	if (run->var_name[run->nvars] == NULL) {
		free(v);
		return false;
	}
	run->var_value[run->nvars++] = v;
	return true;
}

/*
 * Appends s to out with ${NAME} (a capture), ${RANDOM} and ${ENV:NAME}
 * expanded; "$${" is a literal "${".  False, with the failure noted, on a
 * name that is not set or on overflow.
 */
static bool
subst(struct run *run, const char *s, struct buf *out)
{
	const char	*e, *v;
	char		 name[256];
	size_t		 n, i;

	while (*s != '\0') {
		n = s[0] == '$' && s[1] == '$' && s[2] == '{' ? 1 : 0;
		if (n == 1 || s[0] != '$' || s[1] != '{') {
			s += n;
			n = strcspn(s + 1, "$") + 1;
			buf_add(out, s, n);
			s += n;
			continue;
		}
		e = strchr(s, '}');
		n = e != NULL ? (size_t)(e - s - 2) : 0;
		if (e == NULL || n >= sizeof(name))
			return !fail(run, "bad ${...} in: %.200s", s);
		memcpy(name, s + 2, n);
		name[n] = '\0';
		v = NULL;
		if (strcmp(name, "RANDOM") == 0)
			v = run->random;
		else if (strncmp(name, "ENV:", 4) == 0)
			v = getenv(name + 4);
		for (i = 0; v == NULL && i < run->nvars; i++)
			if (strcmp(run->var_name[i], name) == 0)
				v = run->var_value[i];
		if (v == NULL)
			return !fail(run, "${%s} is not set", name);
		buf_str(out, v);
		s = e + 1;
	}
	return !out->overflow || !fail(run, "more than %zu bytes", out->max);
}

/* ---------------------------------------------------------------- JSON */

/*
 * Resolves path (".", .key, [N], [-N] from the end, optionally inside
 * len() or type()) in root.  Returns 1 with *out a new reference (NULL is
 * JSON null), 0 when it does not resolve, -1 when the path is malformed.
 * With root NULL it only checks the syntax.
 */
static int
lookup(struct json_object *root, const char *path, struct json_object **out)
{
	struct json_object *cur = root;
	const char	*p = path, *end = path + strlen(path);
	char		 key[PATH_LEN_MAX];
	long long	 idx, len;
	bool		 miss = root == NULL, neg;
	size_t		 k;
	int		 fn = 0;

	*out = NULL;
	if (strncmp(p, "len(", 4) == 0 || strncmp(p, "type(", 5) == 0) {
		fn = *p;
		p = strchr(p, '(') + 1;
		if (end[-1] != ')')
			return -1;
		end--;
	}
	if (p == end)
		return -1;
	if (end - p == 1 && *p == '.')
		p = end;
	while (p < end) {
		if (*p == '.') {
			k = strcspn(p + 1, ".[)");
			if (k == 0 || k >= sizeof(key))
				return -1;
			memcpy(key, p + 1, k);
			key[k] = '\0';
			p += k + 1;
			if (!miss && !json_object_object_get_ex(cur, key, &cur))
				miss = true;
			continue;
		}
		if (*p++ != '[')
			return -1;
		neg = *p == '-';
		p += neg;
		if (*p < '0' || *p > '9')
			return -1;
		for (idx = 0; *p >= '0' && *p <= '9'; p++)
			idx = idx < 100000000 ? idx * 10 + (*p - '0') : idx;
		if (*p++ != ']')
			return -1;
		if (miss || !json_object_is_type(cur, json_type_array)) {
			miss = true;
			continue;
		}
		len = (long long)json_object_array_length(cur);
		idx = neg ? len - idx : idx;
		if (idx < 0 || idx >= len)
			miss = true;
		else
			cur = json_object_array_get_idx(cur, (size_t)idx);
	}
	if (p != end)
		return -1;
	if (miss)
		return 0;
	if (fn == 't')
		*out = json_object_new_string(
		    json_type_to_name(json_object_get_type(cur)));
	else if (fn == 'l' && json_object_is_type(cur, json_type_array))
		*out = json_object_new_int64(
		    (int64_t)json_object_array_length(cur));
	else if (fn == 'l' && json_object_is_type(cur, json_type_object))
		*out = json_object_new_int64(json_object_object_length(cur));
	else if (fn == 'l' && json_object_is_type(cur, json_type_string))
		*out = json_object_new_int64(json_object_get_string_len(cur));
	else if (fn == 'l')
		return 0;		/* a number or null has no length */
	else
		*out = json_object_get(cur);
	return 1;
}

/* A JSON value as text: strings raw, everything else as JSON. */
static const char *
json_text(struct json_object *o)
{
	if (json_object_is_type(o, json_type_string))
		return json_object_get_string(o);
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

/* Parses the response body once; false when it is not one JSON value. */
static bool
response_json(struct run *run)
{
	struct json_tokener *tok;
	size_t		 end;

	if (run->json_state != 0)
		return run->json_state > 0;
	run->json_state = -1;
	tok = json_tokener_new();
	if (tok == NULL)
		return false;
	run->json = json_tokener_parse_ex(tok, run->resp.p, (int)run->resp.len);
	end = json_tokener_get_parse_end(tok);
	if (json_tokener_get_error(tok) == json_tokener_success &&
	    end + strspn(run->resp.p + end, " \t\r\n") == run->resp.len)
		run->json_state = 1;
	json_tokener_free(tok);
	return run->json_state > 0;
}

/* ---------------------------------------------------------------- HTTP */

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct run	*run = arg;

	/* Taking less than given makes curl fail: the body is too big. */
	return buf_add(&run->resp, p, size * nmemb) ? size * nmemb : 0;
}

static size_t
on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct run	*run = arg;

	/* A status line (after a 100 Continue) starts a new head. */
	if (size * nmemb >= 5 && memcmp(p, "HTTP/", 5) == 0)
		buf_reset(&run->head);
	return buf_add(&run->head, p, size * nmemb) ? size * nmemb : 0;
}

/* Every value of a header, joined with ", " as RFC 9110 allows. */
static bool
header_get(const struct run *run, const char *name, struct buf *out)
{
	const char	*l = run->head.p, *e, *v;
	size_t		 n = strlen(name);
	bool		 found = false;

	for (; *l != '\0'; l = *e != '\0' ? e + 1 : e) {
		e = l + strcspn(l, "\n");
		if (strncasecmp(l, name, n) != 0 || l[n] != ':')
			continue;
		v = l + n + 1 + strspn(l + n + 1, " \t");
		if (found)
			buf_str(out, ", ");
		buf_add(out, v, (size_t)(e - v) - (e > v && e[-1] == '\r'));
		found = true;
	}
	return found;
}

static void
show_response(struct run *run)
{
	buf_show(&run->diag, run->head.p, run->head.len, "    < ");
	if (run->resp.len > 0)
		buf_show(&run->diag, run->resp.p, run->resp.len, "    <   ");
}

/* Sends the request in hand once; false on a transport error. */
static bool
perform(struct run *run)
{
	char		 cerr[CURL_ERROR_SIZE] = "";
	CURL		*c = run->curl;
	CURLcode	 rc;

	buf_reset(&run->head);
	buf_reset(&run->resp);
	json_object_put(run->json);
	run->json = NULL;
	run->json_state = 0;
	run->status = 0;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, run->url.p);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)run->timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "libfinance-http-runner");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, run->hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, run);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, run);
	if (strcmp(run->method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (run->has_body || strcmp(run->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)run->body.len);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, run->body.p);
	}
	if (strcmp(run->method, "POST") != 0 &&
	    strcmp(run->method, "HEAD") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, run->method);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		run->ln = (size_t)run->req_line;
		fail(run, "%s %s: %s: %s", run->method, run->url.p,
		    curl_easy_strerror(rc), run->resp.overflow ?
		    "response body too large" : cerr);
		return false;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &run->status);
	return true;
}

/*
 * Sends the exchange in hand: once, or with "repeat N last" N times
 * keeping only the last response.  In the dry pass it only counts.
 */
static bool
send_exchange(struct run *run)
{
	long long	 n = run->last ? run->repeat : 1;
	struct curl_slist *nl;

	if (!run->sent) {
		run->checks_at = run->ln - 1;
		/* A JSON API: bodies are JSON unless a case says otherwise. */
		if (!run->dry && run->has_body && !run->has_ct) {
			nl = curl_slist_append(run->hl,
			    "Content-Type: application/json");
			if (nl == NULL)
				return bad(run, "out of memory");
			run->hl = nl;
		}
	}
	run->sent = true;
	if (run->dry) {
		run->iter = run->repeat;
		return true;
	}
	if (run->verbose) {
		buf_fmt(&run->diag, "    > %s %s\n", run->method, run->url.p);
		if (run->has_body)
			buf_show(&run->diag, run->body.p, run->body.len,
			    "    >   ");
	}
	while (n-- > 0) {
		run->iter++;
		if (!perform(run))
			return false;
	}
	if (run->verbose)
		show_response(run);
	return true;
}

/* Closes the exchange in hand: reports a failure, frees the request. */
static bool
end_exchange(struct run *run)
{
	if (run->dry && !run->has_status) {
		run->ln = (size_t)run->req_line;
		return bad(run, "request without 'expect status'");
	}
	if (run->failed && run->head.len > 0) {
		if (run->repeat > 1 && !run->last)
			buf_fmt(&run->diag, "    (request %lld of %lld)\n",
			    run->iter, run->repeat);
		buf_fmt(&run->diag, "    line %d: %s %s answered:\n",
		    run->req_line, run->method, run->url.p);
		if (!run->verbose)
			show_response(run);
	}
	curl_slist_free_all(run->hl);
	run->hl = NULL;
	run->method[0] = '\0';
	return !run->failed;
}

/* ---------------------------------------------------------------- keywords */

static bool
kw_name(struct run *run, const char *kw, char *p)
{
	(void)kw;
	if (!run->dry)
		return true;
	if (run->name[0] != '\0' || *rest(p) == '\0')
		return bad(run, "one non-empty name per case");
	snprintf(run->name, sizeof(run->name), "%s", rest(p));
	return true;
}

static bool
kw_request(struct run *run, const char *kw, char *p)
{
	char		*m = word(&p), *path = word(&p);
	size_t		 blen = strlen(run->base);

	(void)kw;
	if (*m == '\0' || m[strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")] != '\0' ||
	    strlen(m) >= sizeof(run->method) || *path != '/' ||
	    *rest(p) != '\0')
		return bad(run, "request METHOD /path");
	snprintf(run->method, sizeof(run->method), "%s", m);
	run->req_line = (int)run->ln;
	run->has_body = run->has_ct = run->has_status = run->sent = false;
	run->last = false;
	run->repeat = 1;
	run->iter = 0;
	run->timeout = TIMEOUT_DEFAULT;
	buf_reset(&run->url);
	buf_reset(&run->body);
	buf_reset(&run->head);
	if (blen > 0 && run->base[blen - 1] == '/')
		blen--;
	buf_add(&run->url, run->base, blen);
	return run->dry || subst(run, path, &run->url);
}

static bool
kw_header(struct run *run, const char *kw, char *p)
{
	struct buf	 h = { .max = TEXT_MAX };
	struct curl_slist *nl;

	(void)kw;
	p = rest(p);
	if (strcspn(p, ":;") == 0 || p[strcspn(p, ":;")] == '\0')
		return bad(run, "header Name: value");
	if (strncasecmp(p, "content-type", 12) == 0 &&
	    (p[12] == ':' || p[12] == ';'))
		run->has_ct = true;
	if (run->dry)
		return true;
	buf_reset(&h);
	nl = subst(run, p, &h) ? curl_slist_append(run->hl, h.p) : NULL;
	if (nl != NULL)
		run->hl = nl;
	buf_free(&h);
	return nl != NULL || (!run->failed && bad(run, "out of memory"));
}

/* Appends s, substituted, to the body; body-esc turns \xHH into a byte. */
static bool
body_text(struct run *run, const char *s, bool esc)
{
	size_t		 i, j = run->body.len, len;
	unsigned char	 c;
	char		*b;

	if (!subst(run, s, &run->body))
		return false;
	if (!esc)
		return true;
	for (i = j; i < run->body.len; i++, j++) {
		b = run->body.p + i;
		if (b[0] == '\\' && b[1] == 'x' && i + 3 < run->body.len &&
		    sodium_hex2bin(&c, 1, b + 2, 2, NULL, &len, NULL) == 0 &&
		    len == 1) {
			b[3] = (char)c;
			i += 3;
		}
		run->body.p[j] = run->body.p[i];
	}
	run->body.len = j;
	run->body.p[j] = '\0';
	return true;
}

static bool
kw_body(struct run *run, const char *kw, char *p)
{
	bool		 esc = strcmp(kw, "body-esc") == 0;
	long long	 n, i;
	const char	*tag;
	size_t		 first = run->ln;

	if (run->has_body)
		return bad(run, "a second body for one request");
	run->has_body = true;
	p = rest(p);
	if (strcmp(kw, "body-repeat") == 0) {
		tag = word(&p);
		p = rest(p);
		if (!num(tag, 0, REQ_BODY_MAX, &n) || *p == '\0' ||
		    n * (long long)strlen(p) > REQ_BODY_MAX)
			return bad(run, "body-repeat COUNT TEXT (at most %d "
			    "bytes)", REQ_BODY_MAX);
		for (i = 0; !run->dry && i < n; i++)
			buf_str(&run->body, p);
		return true;
	}
	if (strncmp(p, "<<", 2) != 0)
		return run->dry || body_text(run, p, esc);
	tag = rest(p + 2);
	if (!is_name(tag))
		return bad(run, "%s <<TAG needs a TAG of [A-Za-z0-9_]", kw);
	for (; run->ln < run->nlines; run->ln++) {
		if (strcmp(run->lines[run->ln], tag) == 0) {
			run->ln++;
			return true;
		}
		if (!run->dry && run->ln > first)
			buf_str(&run->body, "\n");
		if (!run->dry && !body_text(run, run->lines[run->ln], esc))
			return false;
	}
	run->ln = first;
	return bad(run, "no line '%s' ends this body", tag);
}

static bool
kw_repeat(struct run *run, const char *kw, char *p)
{
	char	*n = word(&p);

	(void)kw;
	p = rest(p);
	run->last = strcmp(p, "last") == 0;
	if (!num(n, 1, REPEAT_MAX, &run->repeat) || (*p != '\0' && !run->last))
		return bad(run, "repeat N [last], N from 1 to %d", REPEAT_MAX);
	return true;
}

static bool
kw_timeout(struct run *run, const char *kw, char *p)
{
	(void)kw;
	if (!num(rest(p), 1, 600, &run->timeout))
		return bad(run, "timeout SECONDS, from 1 to 600");
	return true;
}

/* What an op says of got (NULL: not there); eq: the JSON =, or -1. */
static bool
holds(struct run *run, enum op op, const char *got, const char *want, int eq)
{
	regex_t	 re;
	bool	 m = false;

	switch (op) {
	case OP_EQ:
	case OP_NE:
		m = got != NULL && (eq >= 0 ? eq == 1 : strcmp(got, want) == 0);
		return m == (op == OP_EQ);
	case OP_MATCH:
	case OP_NOMATCH:
		if (regcomp(&re, want, REG_EXTENDED | REG_NOSUB) != 0)
			return !fail(run, "bad regex: %s", want);
		m = got != NULL && regexec(&re, got, 0, NULL, 0) == 0;
		regfree(&re);
		return m == (op == OP_MATCH);
	case OP_CONTAINS:
	case OP_NOCONTAINS:
		m = got != NULL && strstr(got, want) != NULL;
		return m == (op == OP_CONTAINS);
	case OP_EXISTS:
	case OP_ABSENT:
		return (got != NULL) == (op == OP_EXISTS);
	case OP_EMPTY:
	case OP__MAX:
		break;
	}
	return got != NULL && *got == '\0';
}

/* In the dry pass: what can be checked before captures exist. */
static bool
check_value(struct run *run, char what, enum op op, const char *v)
{
	enum json_tokener_error jerr;
	regex_t		 re;

	if (strstr(v, "${") != NULL)
		return true;
	if (what == 'j' && (op == OP_EQ || op == OP_NE)) {
		json_object_put(json_tokener_parse_verbose(v, &jerr));
		if (jerr != json_tokener_success)
			return bad(run, "not a JSON value: %s (a string needs "
			    "\"quotes\")", v);
	}
	if (op == OP_MATCH || op == OP_NOMATCH) {
		if (regcomp(&re, v, REG_EXTENDED | REG_NOSUB) != 0)
			return bad(run, "bad regex: %s", v);
		regfree(&re);
	}
	return true;
}

/*
 * expect status CODE | expect header NAME OP [VALUE] |
 * expect json PATH OP [VALUE] | expect body OP [VALUE]
 */
static bool
kw_expect(struct run *run, const char *kw, char *p)
{
	struct buf	 want = { .max = TEXT_MAX }, hv = { .max = TEXT_MAX };
	struct json_object *got = NULL, *wj = NULL;
	enum json_tokener_error jerr;
	char		*what = word(&p), *o, *v;
	const char	*gt = NULL, *subject = "";
	long long	 status;
	unsigned	 i = OP__MAX;
	int		 eq = -1;

	(void)kw;
	what[strcspn(what, ":")] = '\0';
	if (strcmp(what, "status") == 0) {
		if (!num(rest(p), 100, 599, &status))
			return bad(run, "expect status CODE (100-599)");
		run->has_status = true;
		if (!run->dry && run->status != status)
			fail(run, "status: expected %lld, got %ld", status,
			    run->status);
		return true;
	}
	if (strcmp(what, "header") != 0 && strcmp(what, "json") != 0 &&
	    strcmp(what, "body") != 0)
		return bad(run, "expect status, header, json or body");
	if (*what != 'b')
		subject = word(&p);
	o = word(&p);
	v = rest(p);
	for (i = 0; i < OP__MAX && strcmp(o, op_names[i]) != 0; i++)
		;
	if (*subject == '\0' && *what != 'b')
		return bad(run, "expect %s needs a name", what);
	if (*what == 'j' && lookup(NULL, subject, &got) < 0)
		return bad(run, "bad JSON path: %s", subject);
	if (i == OP__MAX ||
	    ((*what == 'b' ? BODY_OPS : VALUE_OPS) & BIT(i)) == 0)
		return bad(run, "expect %s: '%s' is not an operator here",
		    what, o);
	if ((*v != '\0') != ((NO_VALUE_OPS & BIT(i)) == 0) &&
	    !(*what == 'h' && i <= OP_NE))
		return bad(run, "'%s' %s", o, *v != '\0' ? "takes no value" :
		    "needs a value");
	if (run->dry)
		return check_value(run, *what, (enum op)i, v);

	buf_reset(&want);
	buf_reset(&hv);
	if (!subst(run, v, &want))
		goto out;
	if (*what == 'h' && header_get(run, subject, &hv))
		gt = hv.p;
	else if (*what == 'b')
		gt = run->resp.p;
	else if (*what == 'j' && !response_json(run)) {
		fail(run, "json %s: the response body is not JSON", subject);
		goto out;
	} else if (*what == 'j' && lookup(run->json, subject, &got) > 0) {
		gt = json_text(got);
		wj = json_tokener_parse_verbose(want.p, &jerr);
		if (jerr != json_tokener_success &&
		    (i == OP_EQ || i == OP_NE)) {
			fail(run, "not a JSON value: %s", want.p);
			goto out;
		}
		eq = json_object_equal(got, wj);
	}
	if (!holds(run, (enum op)i, gt, want.p, eq))
		fail(run, "%s%s%s: expected %s%s%.300s%s, got %s%.300s%s", what,
		    *subject ? " " : "", subject, o, !*v ? "" : *what == 'j' ?
		    " " : " \"", want.p, *v && *what != 'j' ? "\"" : "",
		    gt ? "\"" : "", gt ? gt : "nothing", gt ? "\"" : "");
out:
	json_object_put(got);
	json_object_put(wj);
	buf_free(&want);
	buf_free(&hv);
	return true;
}

/* capture NAME = PATH | capture NAME = header Header-Name */
static bool
kw_capture(struct run *run, const char *kw, char *p)
{
	struct buf	 hv = { .max = TEXT_MAX };
	struct json_object *o = NULL;
	char		*name = word(&p), *eq = word(&p), *src = word(&p);
	char		*hdr = strcmp(src, "header") == 0 ? word(&p) : NULL;
	bool		 ok = false;

	(void)kw;
	if (!is_name(name) || strcmp(name, "RANDOM") == 0 ||
	    strcmp(eq, "=") != 0 || (hdr != NULL && *hdr == '\0') ||
	    (hdr == NULL && lookup(NULL, src, &o) < 0) || *rest(p) != '\0')
		return bad(run, "capture NAME = .json.path | header NAME");
	if (run->dry)
		return true;
	buf_reset(&hv);
	if (hdr != NULL && header_get(run, hdr, &hv))
		ok = var_set(run, name, hv.p);
	else if (hdr == NULL && response_json(run) &&
	    lookup(run->json, src, &o) > 0)
		ok = var_set(run, name, json_text(o));
	if (!ok)
		fail(run, "capture %s: no %s %s in the response", name,
		    hdr != NULL ? "header" : "JSON", hdr != NULL ? hdr : src);
	json_object_put(o);
	buf_free(&hv);
	return true;
}

/* ---------------------------------------------------------------- cases */

enum where { K_ANY, K_BUILD, K_CHECK };

static const struct keyword {
	const char	*name;
	bool		(*fn)(struct run *, const char *, char *);
	enum where	 where;
} keywords[] = {
	{ "name",	 kw_name,	K_ANY },
	{ "request",	 kw_request,	K_ANY },
	{ "header",	 kw_header,	K_BUILD },
	{ "body",	 kw_body,	K_BUILD },
	{ "body-esc",	 kw_body,	K_BUILD },
	{ "body-repeat", kw_body,	K_BUILD },
	{ "repeat",	 kw_repeat,	K_BUILD },
	{ "timeout",	 kw_timeout,	K_BUILD },
	{ "expect",	 kw_expect,	K_CHECK },
	{ "capture",	 kw_capture,	K_CHECK },
};

/*
 * Plays the lines in order.  Lines before an exchange's first expect or
 * capture build its request; that first check sends it; the checks up to
 * the next request apply to each of its responses (with "repeat N", the
 * checks are played again after each send).
 */
static bool
play(struct run *run)
{
	char		 line[LINE_MAX_LEN], *p, *kw;
	const struct keyword *k;
	size_t		 i, n, nkw;

	nkw = sizeof(keywords) / sizeof(keywords[0]);
	for (;;) {
		p = run->ln < run->nlines ? run->lines[run->ln] : NULL;
		p = p != NULL ? p + strspn(p, " \t") : NULL;
		n = p != NULL ? strcspn(p, " \t:") : 0;
		if (p == NULL || (n == 7 && strncmp(p, "request", 7) == 0)) {
			if (run->method[0] != '\0' && !run->dry &&
			    !run->failed && run->iter < run->repeat) {
				run->ln = run->checks_at;
				if (!send_exchange(run))
					return false;
				continue;
			}
			if (run->method[0] != '\0' && !end_exchange(run))
				return false;
			if (p == NULL)
				return true;
		}
		run->ln++;
		if (*p == '\0' || *p == '#')
			continue;
		if (strlen(p) >= sizeof(line))
			return bad(run, "line longer than %zu bytes",
			    sizeof(line));
		memcpy(line, p, strlen(p) + 1);
		p = line;
		kw = word(&p);
		kw[strcspn(kw, ":")] = '\0';
		for (i = 0, k = NULL; i < nkw; i++)
			if (strcmp(kw, keywords[i].name) == 0)
				k = &keywords[i];
		if (k == NULL)
			return bad(run, "unknown keyword '%s'", kw);
		if (k->where != K_ANY && run->method[0] == '\0')
			return bad(run, "'%s' before the first request", kw);
		if (k->where == K_BUILD && run->sent)
			return bad(run, "'%s' after an expect or capture", kw);
		if (k->where == K_CHECK && !run->sent && !send_exchange(run))
			return false;
		if (!k->fn(run, kw, p))
			return false;
	}
}

/* Reads file into run->text and splits it into run->lines. */
static bool
load(struct run *run)
{
	FILE	*f = fopen(run->file, "rb");
	size_t	 n = 0, i;

	if (f == NULL)
		return bad(run, "cannot open the file");
	run->text = malloc(CASE_FILE_MAX + 1);
	if (run->text != NULL)
		n = fread(run->text, 1, CASE_FILE_MAX + 1, f);
	fclose(f);
	if (run->text == NULL || n > CASE_FILE_MAX)
		return bad(run, "larger than %d bytes", CASE_FILE_MAX);
	if (memchr(run->text, '\0', n) != NULL)
		return bad(run, "the file holds a NUL byte");
	run->text[n] = '\0';
	for (i = 0; i < n; i++)
		run->nlines += run->text[i] == '\n';
	run->lines = calloc(run->nlines + 1, sizeof(*run->lines));
	if (run->lines == NULL)
		return bad(run, "out of memory");
	for (run->nlines = 0, i = 0; i < n; run->nlines++) {
		run->lines[run->nlines] = run->text + i;
		i += strcspn(run->text + i, "\n");
		run->text[i] = '\0';
		if (i > 0 && run->text[i - 1] == '\r')
			run->text[i - 1] = '\0';
		i++;
	}
	return true;
}

/* 16 hex digits, fixed for a case: ${RANDOM}, for unique emails. */
static void
random_hex(char out[17])
{
	unsigned long long v = 0;
	FILE		*f = fopen("/dev/urandom", "rb");

	if (f == NULL || fread(&v, sizeof(v), 1, f) != 1)
		v = (unsigned long long)time(NULL) << 24 ^
		    (unsigned long long)getpid() * 2654435761u;
	if (f != NULL)
		fclose(f);
	snprintf(out, 17, "%016llx", v);
}

/*
 * Checks, then plays, one case file; prints its "ok" or "not ok" line and
 * the diagnostics.  True when it passed.
 */
static bool
run_case(struct run *run, const char *file, int n)
{
	const char	*slash = strrchr(file, '/');
	size_t		 i;
	bool		 ok;

	buf_reset(&run->diag);
	run->file = file;
	run->name[0] = '\0';
	run->ln = run->nlines = 0;
	run->req_line = 0;
	run->failed = false;
	run->method[0] = '\0';
	random_hex(run->random);
	run->dry = true;
	ok = load(run) && play(run);
	if (ok && run->name[0] == '\0')
		ok = bad(run, "no 'name' line");
	if (ok && run->req_line == 0)
		ok = bad(run, "no 'request' line");
	run->dry = run->failed = false;
	run->ln = 0;
	if (ok)
		ok = play(run);
	if (run->method[0] != '\0')
		end_exchange(run);

	printf("%s %d - %s (%s)\n", ok ? "ok" : "not ok", n,
	    run->name[0] != '\0' ? run->name : "case file does not parse",
	    slash != NULL ? slash + 1 : file);
	if (!ok || run->verbose)
		fputs(run->diag.p, stdout);
	if (run->diag.overflow)
		printf("    (diagnostics cut at %d bytes)\n", DIAG_MAX);
	fflush(stdout);

	for (i = 0; i < run->nvars; i++) {
		free(run->var_name[i]);
		free(run->var_value[i]);
	}
	run->nvars = 0;
	free(run->lines);
	free(run->text);
	run->lines = NULL;
	run->text = NULL;
	return ok;
}

int
main(int argc, char *argv[])
{
	struct run	 run = {
		.diag = { .max = DIAG_MAX }, .url = { .max = TEXT_MAX },
		.body = { .max = REQ_BODY_MAX }, .head = { .max = HEAD_MAX },
		.resp = { .max = RESP_BODY_MAX },
	};
	int		 i, first = 1, passed = 0, failed = 0;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		run.verbose = true;
		first = 2;
	}
	if (argc - first < 2 || (strncmp(argv[first], "http://", 7) != 0 &&
	    strncmp(argv[first], "https://", 8) != 0)) {
		fprintf(stderr, "usage: runner [-v] BASE_URL case-file...\n");
		return 2;
	}
	run.base = argv[first];
	if (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
		run.curl = curl_easy_init();
	if (run.curl == NULL) {
		fprintf(stderr, "runner: cannot initialise libcurl\n");
		return 2;
	}
	printf("1..%d\n", argc - first - 1);
	for (i = first + 1; i < argc; i++) {
		if (run_case(&run, argv[i], i - first))
			passed++;
		else
			failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	curl_easy_cleanup(run.curl);
	curl_global_cleanup();
	json_object_put(run.json);
	buf_free(&run.diag);
	buf_free(&run.url);
	buf_free(&run.body);
	buf_free(&run.head);
	buf_free(&run.resp);
	return failed > 0 ? 1 : 0;
}
