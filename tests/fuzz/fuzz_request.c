/*
 * The CGI environment and the body reader: what request_read() makes of
 * the parameters nginx passes and of the body as FastCGI delivers it.
 *
 * Input: a first byte (the size of the body's FastCGI records, and
 * whether CONTENT_LENGTH is the body's true length when the environment
 * does not set it), NAME=VALUE lines, an empty line, then the body.
 * The proxies 127.0.0.1 and ::1 are trusted, so X-Forwarded-For is read.
 */
#include "fuzz.h"
#include "app.h"

#include <arpa/inet.h>
#include <stdio.h>

#define MAX_ENV	64

/* A FastCGI input stream over memory that hands out `chunk` bytes a fill. */
struct body_source {
	unsigned char	*next, *end;
	size_t		 chunk;
};

static void
fill(FCGX_Stream *s)
{
	struct body_source *b = s->data;
	size_t		 n = (size_t)(b->end - b->next);

	if (n == 0) {
		s->isClosed = 1;
		return;
	}
	if (n > b->chunk)
		n = b->chunk;
	s->rdNext = s->stopUnget = b->next;
	s->stop = s->wrNext = b->next + n;
	b->next += n;
}

static bool
trusted(const char *ip)
{
	return strcmp(ip, "127.0.0.1") == 0 || strcmp(ip, "::1") == 0;
}

/*
 * The client address as the rule says, written differently from
 * src/request.c: behind a trusted REMOTE_ADDR, the right-most
 * X-Forwarded-For entry that is not trusted, if it is an address.
 */
static const char *
expected_ip(const char *remote, const char *xff, char *buf, size_t len)
{
	char		*copy, *rest, *tok, *toks[4096];
	unsigned char	 bin[16];
	size_t		 n = 0, i, l;

	if (remote == NULL)
		remote = "";
	if (xff == NULL || xff[0] == '\0' || !trusted(remote))
		return remote;
	rest = copy = strdup(xff);
	while ((tok = strsep(&rest, ",")) != NULL && n < 4096)
		toks[n++] = tok;
	for (i = n; i-- > 0;) {
		tok = toks[i] + strspn(toks[i], " \t");
		for (l = strlen(tok); l > 0 && (tok[l - 1] == ' ' || tok[l - 1] == '\t'); l--)
			tok[l - 1] = '\0';
		if (tok[0] == '\0' || trusted(tok))
			continue;
		if (strlen(tok) < len && (inet_pton(AF_INET, tok, bin) == 1 ||
		    inet_pton(AF_INET6, tok, bin) == 1)) {
			snprintf(buf, len, "%s", tok);
			free(copy);
			return buf;
		}
		break;
	}
	free(copy);
	return remote;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fin_arena *a;
	static struct fin_config cfg;
	char		*s, *line, *sep, *envp[MAX_ENV + 2], cl[32];
	const char	*from, *to, *want;
	char		 ip[46];
	struct body_source src;
	FCGX_Stream	 in;
	FCGX_Request	 f;
	struct request	 req;
	size_t		 nenv = 0, body_len;
	int64_t		 limit, n;
	enum fin_err	 e;

	if (size < 1)
		return 0;
	if (a == NULL) {
		a = fin_arena_new(ARENA_MAX);
		cfg = fuzz_cfg;
		cfg.trusted_proxies = "127.0.0.1, ::1";
	}
	s = fuzz_string(data + 1, size - 1);
	line = s;
	sep = strstr(s, "\n\n");
	if (sep != NULL)
		*sep = '\0';
	while (line != NULL && *line != '\0' && nenv < MAX_ENV) {
		char	*nl = strchr(line, '\n');

		if (nl != NULL)
			*nl++ = '\0';
		if (strchr(line, '=') != NULL)
			envp[nenv++] = line;
		line = nl;
	}
	src.next = (unsigned char *)(sep != NULL ? sep + 2 : s + size - 1);
	src.end = (unsigned char *)s + size - 1;
	src.chunk = (data[0] & 0x7f) + 1;
	body_len = (size_t)(src.end - src.next);
	if ((data[0] & 0x80) && nenv < MAX_ENV) {
		snprintf(cl, sizeof(cl), "CONTENT_LENGTH=%zu", body_len);
		envp[nenv++] = cl;
	}
	envp[nenv] = NULL;

	memset(&in, 0, sizeof(in));
	in.isReader = 1;
	in.fillBuffProc = fill;
	in.data = &src;
	in.rdNext = in.stop = in.stopUnget = in.wrNext = src.next;
	memset(&f, 0, sizeof(f));
	f.in = &in;
	f.envp = envp;
	memset(&req, 0, sizeof(req));
	req.arena = a;
	req.cfg = &cfg;

	e = request_read(&req, &f);
	if (e != FIN_OK && e != FIN_E_VALIDATION_ERROR)
		abort();
	if ((e == FIN_E_VALIDATION_ERROR) != (req.query_fault != NULL) ||
	    (req.query_fault != NULL && (req.query_fault_field == NULL ||
	    strlen(req.query_fault_field) > 64 ||
	    !fin_utf8_valid(req.query_fault_field, strlen(req.query_fault_field)))))
		abort();
	if (req.nquery > MAX_QUERY_PARAMS)
		abort();
	if (!fin_valid_request_id(req.request_id))
		abort();

	/* The client address follows the rule exactly. */
	if (strcmp(req.ip, expected_ip(FCGX_GetParam("REMOTE_ADDR", envp),
	    FCGX_GetParam("HTTP_X_FORWARDED_FOR", envp), ip, sizeof(ip))) != 0)
		abort();

	/* The body is what CONTENT_LENGTH promised, or it is flagged. */
	want = FCGX_GetParam("CONTENT_LENGTH", envp);
	if (req.body != NULL && (req.body[req.body_len] != '\0' ||
	    req.body_len > body_len || req.body_len > BODY_MAX))
		abort();
	if (want != NULL && fin_parse_int64(want, 0, BODY_MAX, &n) &&
	    !req.body_short && !req.body_too_large &&
	    ((size_t)n != req.body_len || (n > 0 && memcmp(req.body,
	    src.end - body_len, req.body_len) != 0)))
		abort();
	if (want == NULL && (req.body != NULL || req.body_short ||
	    req.body_too_large))
		abort();

	if (e == FIN_OK) {
		if (request_limit(&req, &limit) && (limit < 1 || limit > 200))
			abort();
		if (request_date_range(&req, &from, &to) == FIN_OK &&
		    from != NULL && to != NULL && strcmp(from, to) > 0)
			abort();
	}
	fin_arena_reset(a);
	free(s);
	return 0;
}
