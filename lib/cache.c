/*
 * The response cache in Redis.  Every page is stored with the per-user
 * generation it was made under and its tag ("<generation>\n<tag>\n<page>":
 * a hit is sent without hashing it again for its ETag), and every write
 * bumps the generation after it commits, so a read after a write has
 * returned never takes an old page on any worker.  The look-up is two
 * plain GETs in one round trip (the generation and the page), compared
 * here: no Lua, which would copy and hash every byte of a page.  Redis
 * down: every call is a miss and a no-op, and PostgreSQL answers.  Keys
 * carry Redis's run_id, as the session mirror's do: a Redis restarted from
 * an old snapshot starts with an empty cache instead of stale pages.
 */
#include "setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "internal.h"

#define CACHE_TTL_S	60	/* seconds: bounds staleness if a bump is lost */
#define STR_(x)		#x
#define STR(x)		STR_(x)
#define CACHE_TTL	STR(CACHE_TTL_S)

_Static_assert(CACHE_TTL_S * 1000 <= FIN_HEARD_TTL_MS,
    "a stale cache is announced for as long as its pages can live");

/* A write whose bump Redis did not take, for every worker to hear. */
static const struct fin_stmt stmt_stale_announce = {
	"cache_stale_announce",
	"SELECT pg_notify('fin_cache_stale', $1)", 1 };

static void
query_digest(const char *kind, const char *query, char out[65])
{
	unsigned char	 md[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)kind,
	    strlen(kind) + 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)query,
	    strlen(query));
	crypto_hash_sha256_final(&st, md);
	sodium_bin2hex(out, 65, md, sizeof(md));
}

void
Fin_cache_lookup_cmd(struct fin_ctx *ctx, const char *user_id,
    const char *kind, const char *query, struct fin_cache_lookup *c,
    struct fin_cache_entry *out)
{
	memset(out, 0, sizeof(*out));
	query_digest(kind, query, out->digest);
	snprintf(c->genkey, sizeof(c->genkey), "fin:gen:%s:%s",
	    ctx->redis_run_id, user_id);
	snprintf(c->pagekey, sizeof(c->pagekey), "fin:c:%s:%s:%s",
	    ctx->redis_run_id, user_id, out->digest);
	snprintf(out->run_id, sizeof(out->run_id), "%s", ctx->redis_run_id);
	c->gen[0] = c->page[0] = "GET";
	c->gen[1] = c->genkey;
	c->page[1] = c->pagekey;
}

enum fin_err
Fin_cache_lookup_reply(const redisReply *gen, const redisReply *page,
    struct fin_arena *a, struct fin_cache_entry *out)
{
	size_t		 glen, tlen;
	const char	*tag, *nl;

	if (gen == NULL || (gen->type != REDIS_REPLY_STRING &&
	    gen->type != REDIS_REPLY_NIL) || (page != NULL &&
	    page->type != REDIS_REPLY_STRING && page->type != REDIS_REPLY_NIL))
		return FIN_E_SERVICE_UNAVAILABLE;
	snprintf(out->generation, sizeof(out->generation), "%s",
	    gen->type == REDIS_REPLY_STRING ? gen->str : "0");
	out->usable = true;
	glen = strlen(out->generation);
	/* A page made under another generation is a miss (and is replaced). */
	if (page == NULL || page->type != REDIS_REPLY_STRING ||
	    page->len <= glen || memcmp(page->str, out->generation, glen) != 0 ||
	    page->str[glen] != '\n')
		return FIN_E_NOT_FOUND;
	tag = page->str + glen + 1;
	nl = memchr(tag, '\n', page->len - glen - 1);
	if (nl == NULL || (tlen = (size_t)(nl - tag)) >= sizeof(out->tag))
		return FIN_E_NOT_FOUND;
	memcpy(out->tag, tag, tlen);
	out->tag[tlen] = '\0';
	out->body = fin_arena_strndup(a, nl + 1,
	    page->len - (size_t)(nl + 1 - page->str));
	return out->body != NULL ? FIN_OK : FIN_E_NOT_FOUND;
}

/* Bits of one directive list, Cache-Control's or Pragma's. */
#define DIR_NO_CACHE	0x1u
#define DIR_MAX_AGE_0	0x2u
#define DIR_NO_STORE	0x4u

static bool
name_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

/*
 * RFC 9111 §5.2: #( token [ "=" ( token / quoted-string ) ] ).  A quoted
 * value may hold commas (it is skipped whole); what is not understood is
 * ignored, as §5.2.3 asks.
 */
static unsigned
directive_list(const char *p)
{
	const char	*name, *val;
	size_t		 nlen, vlen;
	unsigned	 out = 0;

	while (*p != '\0') {
		p += strspn(p, " \t,");
		name = p;
		nlen = strcspn(p, " \t,=");
		p += nlen;
		p += strspn(p, " \t");
		val = NULL;
		vlen = 0;
		if (*p == '=') {
			p++;
			p += strspn(p, " \t");
			if (*p == '"') {
				val = ++p;
				while (*p != '\0' && *p != '"')
					p += p[0] == '\\' && p[1] != '\0' ? 2 : 1;
				vlen = (size_t)(p - val);
			} else {
				val = p;
				vlen = strcspn(p, " \t,");
			}
			p = val + vlen;
		}
		p += strcspn(p, ",");
		if (name_is(name, nlen, "no-cache"))
			out |= DIR_NO_CACHE;
		else if (name_is(name, nlen, "no-store"))
			out |= DIR_NO_STORE;
		else if (name_is(name, nlen, "max-age") && val != NULL &&
		    vlen > 0 && strspn(val, "0") >= vlen)
			out |= DIR_MAX_AGE_0;
	}
	return out;
}

/*
 * A page is at most the cache's TTL old, so of max-age only 0 (what a
 * browser's reload sends) asks for anything: a page made just now.
 * Pragma is HTTP/1.0's no-cache, ignored next to Cache-Control (§5.4).
 */
unsigned
fin_cache_directives(const char *cache_control, const char *pragma)
{
	unsigned	 d, out = 0;

	if (cache_control == NULL || cache_control[0] == '\0')
		return pragma != NULL && (directive_list(pragma) & DIR_NO_CACHE) ?
		    FIN_CACHE_NO_READ : 0;
	d = directive_list(cache_control);
	if (d & (DIR_NO_CACHE | DIR_MAX_AGE_0))
		out |= FIN_CACHE_NO_READ;
	if (d & DIR_NO_STORE)
		out |= FIN_CACHE_NO_STORE;
	return out;
}

enum fin_err
fin_cache_get(struct fin_ctx *ctx, struct fin_arena *a, const char *user_id,
    const char *kind, const char *query, struct fin_cache_entry *out)
{
	struct fin_cache_lookup c;
	const char	**argv[2];
	int		 argc[2] = { 2, 2 };
	redisReply	*r[2];
	enum fin_err	 e;

	memset(out, 0, sizeof(*out));
	/* Connect first: the keys need the run_id of this Redis process. */
	if (!Fin_redis_available(ctx))
		return FIN_E_SERVICE_UNAVAILABLE;
	/* Announced stale: neither read nor replaced (out stays unusable). */
	(void)Fin_db_announcements(ctx);
	if (!Fin_cache_trusted(ctx, user_id))
		return FIN_E_NOT_FOUND;
	Fin_cache_lookup_cmd(ctx, user_id, kind, query, &c, out);
	argv[0] = c.gen;
	argv[1] = c.page;
	e = Fin_redis_pipeline(ctx, 2, argc, (const char **const *)argv, NULL, r);
	if (e != FIN_OK)
		return e;
	e = Fin_cache_lookup_reply(r[0], r[1], a, out);
	freeReplyObject(r[0]);
	freeReplyObject(r[1]);
	return e;
}

void
fin_cache_put(struct fin_ctx *ctx, const char *user_id,
    const struct fin_cache_entry *entry, const char *body, const char *tag)
{
	char		 key[FIN_CACHE_KEY_MAX], *value;
	const char	*argv[5];
	size_t		 argvlen[5], glen, tlen, blen, vlen;

	tlen = strlen(tag);
	if (!entry->usable || tlen >= sizeof(entry->tag) ||
	    memchr(tag, '\n', tlen) != NULL)
		return;
	/* Tagged with the generation read before the query ran: never newer. */
	glen = strlen(entry->generation);
	blen = strlen(body);
	vlen = glen + 1 + tlen + 1 + blen;
	if ((value = malloc(vlen)) == NULL)
		return;
	memcpy(value, entry->generation, glen);
	value[glen] = '\n';
	memcpy(value + glen + 1, tag, tlen);
	value[glen + 1 + tlen] = '\n';
	memcpy(value + glen + 2 + tlen, body, blen);
	snprintf(key, sizeof(key), "fin:c:%s:%s:%s", entry->run_id, user_id,
	    entry->digest);
	argv[0] = "SET";
	argv[1] = key;
	argv[2] = value;
	argv[3] = "EX";
	argv[4] = CACHE_TTL;
	argvlen[0] = 3;
	argvlen[1] = strlen(key);
	argvlen[2] = vlen;
	argvlen[3] = 2;
	argvlen[4] = strlen(CACHE_TTL);
	/* The client is not kept waiting for a fill: no reply is awaited. */
	Fin_redis_send_later(ctx, 5, argv, argvlen);
	free(value);
}

/*
 * A write whose bump Redis did not take (down, stalled, refusing writes
 * while it still serves reads) would leave the old pages to every worker
 * for up to CACHE_TTL seconds, the writer's own next read included: then
 * PostgreSQL tells every worker not to read this user's pages in that
 * Redis (its run_id, the last one seen) until they have all expired
 * (Fin_cache_trusted).  A Redis restarted meanwhile holds none of them.
 */
void
fin_cache_invalidate(struct fin_ctx *ctx, const char *user_id)
{
	char		 key[FIN_CACHE_KEY_MAX];
	char		 stale[FIN_HEARD_ID_MAX];
	const char	*argv[2], *p[1] = { stale };
	redisReply	*r = NULL;
	PGresult	*res;
	bool		 bumped = false;

	if (Fin_redis_available(ctx)) {
		snprintf(key, sizeof(key), "fin:gen:%s:%s", ctx->redis_run_id,
		    user_id);
		argv[0] = "INCR";
		argv[1] = key;
		if (Fin_redis_command(ctx, &r, 2, argv, NULL) == FIN_OK) {
			bumped = r->type == REDIS_REPLY_INTEGER;
			freeReplyObject(r);
		}
	}
	if (bumped)
		return;
	snprintf(stale, sizeof(stale), "%s %s", user_id,
	    ctx->redis_run_id[0] != '\0' ? ctx->redis_run_id :
	    ctx->redis_last_run_id);
	Fin_heard_add(&ctx->stale_caches, stale, fin_now_ms());
	if (Fin_db_exec(ctx, &stmt_stale_announce, p, &res) == FIN_OK) {
		PQclear(res);
		fin_log(FIN_LOG_WARN, "cache_invalidate_failed", "could not bump "
		    "the cache generation of user %s: every worker reads its "
		    "pages from PostgreSQL for %s s", user_id, CACHE_TTL);
	} else
		fin_log(FIN_LOG_ERROR, "cache_invalidate_failed", "could not bump "
		    "the cache generation of user %s nor announce it: its "
		    "pages may be stale for up to %s s", user_id, CACHE_TTL);
}

bool
Fin_cache_trusted(const struct fin_ctx *ctx, const char *user_id)
{
	char		 here[FIN_HEARD_ID_MAX], unknown[FIN_HEARD_ID_MAX];
	int64_t		 now = fin_now_ms();

	snprintf(here, sizeof(here), "%s %s", user_id, ctx->redis_run_id);
	snprintf(unknown, sizeof(unknown), "%s ", user_id);
	return !Fin_heard_lately(&ctx->stale_caches, here, now) &&
	    !Fin_heard_lately(&ctx->stale_caches, unknown, now);
}
