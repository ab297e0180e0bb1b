/*
 * The response cache in Redis.  Keys carry a per-user generation that
 * every write bumps after it commits, so a read after a write has returned
 * never finds the old page on any worker; old generations simply expire.
 * Lookup and generation read are one round trip (a Lua script).  Redis
 * down: every call is a miss and a no-op, and PostgreSQL answers.  Keys
 * carry Redis's run_id, as the session mirror's do: a Redis restarted from
 * an old snapshot starts with an empty cache instead of stale pages.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "internal.h"

#define CACHE_TTL	"60"	/* seconds: bounds staleness if a bump is lost */

/* Returns {generation, value or false} for KEYS[1] = the user's gen key. */
static const char lookup_lua[] =
	"local g = redis.call('GET', KEYS[1]) or '0' "
	"return {g, redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])}";

static void
query_digest(const char *kind, const char *query, char out[65])
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 len = 0, i;
	EVP_MD_CTX	*c = EVP_MD_CTX_new();

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, kind, strlen(kind) + 1);
	EVP_DigestUpdate(c, query, strlen(query));
	EVP_DigestFinal_ex(c, md, &len);
	EVP_MD_CTX_free(c);
	for (i = 0; i < 32 && i < len; i++)
		snprintf(out + i * 2, 3, "%02x", md[i]);
	out[64] = '\0';
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
	snprintf(c->prefix, sizeof(c->prefix), "fin:c:%s:%s:",
	    ctx->redis_run_id, user_id);
	snprintf(out->run_id, sizeof(out->run_id), "%s", ctx->redis_run_id);
	c->argv[0] = "EVAL";
	c->argv[1] = lookup_lua;
	c->argv[2] = "1";
	c->argv[3] = c->genkey;
	c->argv[4] = c->prefix;
	c->argv[5] = out->digest;
}

enum fin_err
Fin_cache_lookup_reply(const redisReply *r, struct fin_arena *a,
    struct fin_cache_entry *out)
{
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		return FIN_E_SERVICE_UNAVAILABLE;
	snprintf(out->generation, sizeof(out->generation), "%s",
	    r->element[0]->str);
	out->usable = true;
	if (r->element[1]->type == REDIS_REPLY_STRING)
		out->body = fin_arena_strndup(a, r->element[1]->str,
		    r->element[1]->len);
	return out->body != NULL ? FIN_OK : FIN_E_NOT_FOUND;
}

enum fin_err
fin_cache_get(struct fin_ctx *ctx, struct fin_arena *a, const char *user_id,
    const char *kind, const char *query, struct fin_cache_entry *out)
{
	struct fin_cache_lookup c;
	redisReply	*r;
	enum fin_err	 e;

	memset(out, 0, sizeof(*out));
	/* Connect first: the keys need the run_id of this Redis process. */
	if (!Fin_redis_available(ctx))
		return FIN_E_SERVICE_UNAVAILABLE;
	Fin_cache_lookup_cmd(ctx, user_id, kind, query, &c, out);
	if ((e = Fin_redis_command(ctx, &r, 6, c.argv, NULL)) != FIN_OK)
		return e;
	e = Fin_cache_lookup_reply(r, a, out);
	freeReplyObject(r);
	return e;
}

void
fin_cache_put(struct fin_ctx *ctx, const char *user_id,
    const struct fin_cache_entry *entry, const char *body)
{
	char		 key[FIN_CACHE_KEY_MAX];
	const char	*argv[5];

	if (!entry->usable)
		return;
	/* Stored under the generation read before the query ran: never newer. */
	snprintf(key, sizeof(key), "fin:c:%s:%s:%s:%s", entry->run_id, user_id,
	    entry->generation, entry->digest);
	argv[0] = "SET";
	argv[1] = key;
	argv[2] = body;
	argv[3] = "EX";
	argv[4] = CACHE_TTL;
	/* The client is not kept waiting for a fill: no reply is awaited. */
	Fin_redis_send_later(ctx, 5, argv, NULL);
}

void
fin_cache_invalidate(struct fin_ctx *ctx, const char *user_id)
{
	char		 key[FIN_CACHE_KEY_MAX];
	const char	*argv[2];
	redisReply	*r;

	if (!Fin_redis_available(ctx)) {
		fin_log(FIN_LOG_WARN, "cache_invalidate_failed", "could not bump "
		    "the cache generation of user %s: entries expire in %s s",
		    user_id, CACHE_TTL);
		return;
	}
	snprintf(key, sizeof(key), "fin:gen:%s:%s", ctx->redis_run_id, user_id);
	argv[0] = "INCR";
	argv[1] = key;
	if (Fin_redis_command(ctx, &r, 2, argv, NULL) == FIN_OK)
		freeReplyObject(r);
	else
		fin_log(FIN_LOG_WARN, "cache_invalidate_failed", "could not bump "
		    "the cache generation of user %s: entries expire in %s s",
		    user_id, CACHE_TTL);
}
