/*
 * The per-request gate: rate limits and "is this session alive?" in one
 * pipelined Redis round trip.  The access token is verified first (CPU
 * only), so the pipeline can carry the per-user limit, the session mirror
 * look-up and, for a cached route, the response cache look-up together
 * with the per-IP limit: a cache hit costs one round trip in all.
 *
 * Rate limits use GCRA (the generic cell rate algorithm) in a Lua script:
 * one key per limit holding a single timestamp, atomic in Redis, shared by
 * every worker and host, smooth (no burst at window edges as with fixed
 * windows) and exact about Retry-After.  Redis's own clock (TIME) is used
 * so that hosts with skewed clocks agree.  Redis down: limits fail open
 * with a warning, and PostgreSQL answers for the session.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "internal.h"

#define TOUCH_EVERY	"60"	/* last_used_at is written at most this often */
#define LIMIT_KEY_MAX	192
#define MAX_CMDS	5	/* limits, mirror GET, touch SET, cache GET x 2 */

/*
 * Every limit of a request in one call: KEYS[i] is limit i's key,
 * ARGV[2i-1] its period in ms and ARGV[2i] its limit.  Returns for each
 * {allowed, remaining, retry_after_s, reset_s}; each limit is counted
 * whether or not another refused, as separate checks would be.
 */
static const char gcra_lua[] =
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"local out = {} "
	"for i = 1, #KEYS do "
	"  local period = tonumber(ARGV[2 * i - 1]) "
	"  local limit = tonumber(ARGV[2 * i]) "
	"  local interval = period / limit "
	"  local tat = tonumber(redis.call('GET', KEYS[i])) or now "
	"  if tat < now then tat = now end "
	"  local ahead = tat + interval - now "
	"  if ahead > period then "
	"    out[i] = {0, 0, math.ceil((ahead - period) / 1000), "
	"      math.ceil((tat - now) / 1000)} "
	"  else "
	"    redis.call('SET', KEYS[i], tostring(tat + interval), 'PX', "
	"      math.ceil(ahead)) "
	"    out[i] = {1, math.floor((period - ahead) / interval), 0, "
	"      math.ceil(ahead / 1000)} "
	"  end "
	"end "
	"return out";

static const char *const limit_names[FIN_LIMIT__MAX] = {
	"ip",			/* FIN_LIMIT_IP */
	"user",			/* FIN_LIMIT_USER */
	"signup",		/* FIN_LIMIT_SIGNUP_IP */
	"login_ip",		/* FIN_LIMIT_LOGIN_IP */
	"login_email",		/* FIN_LIMIT_LOGIN_EMAIL */
};

static void
limit_params(const struct fin_config *cfg, enum fin_limit_kind k,
    int64_t *limit, int64_t *period_s)
{
	switch (k) {
	case FIN_LIMIT_IP:
		*limit = cfg->rl_ip_per_min;
		*period_s = cfg->rl_ip_window;
		break;
	case FIN_LIMIT_USER:
		*limit = cfg->rl_user_per_min;
		*period_s = cfg->rl_user_window;
		break;
	case FIN_LIMIT_SIGNUP_IP:
		*limit = cfg->rl_signup_per_hour;
		*period_s = cfg->rl_signup_window;
		break;
	case FIN_LIMIT_LOGIN_IP:
		*limit = cfg->rl_login_ip_per_15min;
		*period_s = cfg->rl_login_window;
		break;
	default:
		*limit = cfg->rl_login_email_per_15min;
		*period_s = cfg->rl_login_window;
		break;
	}
}

/* The one EVALSHA of a request's limits, in caller-owned storage. */
struct limits_cmd {
	struct {
		char	 key[LIMIT_KEY_MAX];
		char	 period[24];
		char	 limit[24];
	}		 l[FIN_LIMIT__MAX];
	int		 kind[FIN_LIMIT__MAX];
	size_t		 n;
	char		 numkeys[24];
	const char	*argv[3 + 3 * FIN_LIMIT__MAX];
};

/* The script's SHA1 in hex, once per context. */
static const char *
gcra_sha1(struct fin_ctx *ctx)
{
	unsigned char	 md[EVP_MAX_MD_SIZE] = { 0 };

	if (ctx->gcra_sha1[0] == '\0') {
		EVP_Digest(gcra_lua, sizeof(gcra_lua) - 1, md, NULL, EVP_sha1(),
		    NULL);
		sodium_bin2hex(ctx->gcra_sha1, sizeof(ctx->gcra_sha1), md, 20);
	}
	return ctx->gcra_sha1;
}

/* After a Redis restart or SCRIPT FLUSH: EVALSHA answers NOSCRIPT. */
static bool
script_missing(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static bool
load_script(struct fin_ctx *ctx)
{
	const char	*argv[3] = { "SCRIPT", "LOAD", gcra_lua };
	redisReply	*r;
	bool		 ok;

	if (Fin_redis_command(ctx, &r, 3, argv, NULL) != FIN_OK)
		return false;
	ok = r->type == REDIS_REPLY_STRING && strcmp(r->str, gcra_sha1(ctx)) == 0;
	freeReplyObject(r);
	return ok;
}

/* Adds limit k on subject to c. */
static void
limit_add(struct fin_ctx *ctx, enum fin_limit_kind k, const char *subject,
    struct limits_cmd *c, struct fin_limit_result *r)
{
	unsigned char	 md[crypto_hash_sha256_BYTES];
	char		 hex[33];
	int64_t		 limit, period;

	limit_params(ctx->cfg, k, &limit, &period);
	/* Subjects are hashed: no email address or IP sits in Redis as text. */
	crypto_hash_sha256(md, (const unsigned char *)subject, strlen(subject));
	sodium_bin2hex(hex, sizeof(hex), md, 16);
	snprintf(c->l[c->n].key, LIMIT_KEY_MAX, "fin:rl:%s:%s", limit_names[k], hex);
	snprintf(c->l[c->n].period, 24, "%lld", (long long)period * 1000);
	snprintf(c->l[c->n].limit, 24, "%lld", (long long)limit);
	c->kind[c->n++] = (int)k;
	memset(r, 0, sizeof(*r));
	r->limit = limit;
}

/* The EVALSHA of c's limits; its argument count. */
static int
limits_argv(struct fin_ctx *ctx, struct limits_cmd *c)
{
	size_t	 i;

	snprintf(c->numkeys, sizeof(c->numkeys), "%zu", c->n);
	c->argv[0] = "EVALSHA";
	c->argv[1] = gcra_sha1(ctx);
	c->argv[2] = c->numkeys;
	for (i = 0; i < c->n; i++) {
		c->argv[3 + i] = c->l[i].key;
		c->argv[3 + c->n + 2 * i] = c->l[i].period;
		c->argv[3 + c->n + 2 * i + 1] = c->l[i].limit;
	}
	return (int)(3 + 3 * c->n);
}

static bool
limit_reply(redisReply *rep, struct fin_limit_result *r)
{
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4)
		return false;
	r->checked = true;
	r->allowed = rep->element[0]->integer == 1;
	r->remaining = rep->element[1]->integer;
	r->retry_after = rep->element[2]->integer;
	r->reset = rep->element[3]->integer;
	if (r->retry_after < 1 && !r->allowed)
		r->retry_after = 1;
	return true;
}

static const char *
subject_of(const struct fin_gate *in, const struct fin_principal *pr,
    enum fin_limit_kind k)
{
	switch (k) {
	case FIN_LIMIT_USER:
		return pr->user_id;
	case FIN_LIMIT_LOGIN_EMAIL:
		return in->email != NULL ? in->email : "";
	default:
		return in->ip;
	}
}

/* Reads the limits' replies into out; false if the reply is not theirs. */
static bool
limits_reply(const redisReply *r, const struct limits_cmd *c,
    struct fin_gate_result *out)
{
	size_t	 i;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != c->n)
		return false;
	for (i = 0; i < c->n; i++) {
		if (!limit_reply(r->element[i], &out->limits[c->kind[i]]))
			return false;
		if (!out->limits[c->kind[i]].allowed && out->denied < 0)
			out->denied = c->kind[i];
	}
	return true;
}

enum fin_err
fin_gate_check(struct fin_ctx *ctx, const struct fin_gate *in,
    struct fin_gate_result *out)
{
	struct limits_cmd lc;
	struct fin_cache_lookup cache;
	char		 skey[FIN_MIRROR_KEY_MAX], tkey[FIN_MIRROR_KEY_MAX];
	const char	*get[2], *set[6];
	const char	**argv[MAX_CMDS];
	int		 argc[MAX_CMDS];
	redisReply	*rep[MAX_CMDS];
	struct fin_jwt_claims c;
	bool		 token_ok = false, alive = false, touch = false;
	bool		 mirrored = false;	/* Redis holds "alive" */
	bool		 redis_ok, up, heard;
	size_t		 n = 0, i;
	/* Where each command sits in the pipeline, or -1. */
	int		 lim = -1, mirror = -1, touched = -1, gen = -1, page = -1;
	int		 k;
	enum fin_err	 e;

	memset(out, 0, sizeof(*out));
	out->denied = -1;
	out->auth = FIN_OK;
	if (in->token != NULL) {
		out->auth = FIN_E_UNAUTHORIZED;
		if (fin_jwt_verify(ctx->cfg, in->token, (int64_t)time(NULL),
		    &c) == FIN_OK) {
			token_ok = true;
			snprintf(out->principal.user_id,
			    sizeof(out->principal.user_id), "%s", c.sub);
			snprintf(out->principal.session_id,
			    sizeof(out->principal.session_id), "%s", c.sid);
		}
	}
	lc.n = 0;
	for (k = 0; k < FIN_LIMIT__MAX; k++) {
		if ((in->limits & (1u << k)) == 0)
			continue;
		if (k == FIN_LIMIT_USER && !token_ok)
			continue;
		limit_add(ctx, (enum fin_limit_kind)k,
		    subject_of(in, &out->principal, (enum fin_limit_kind)k),
		    &lc, &out->limits[k]);
	}
	if (lc.n > 0) {
		argc[n] = limits_argv(ctx, &lc);
		argv[n] = lc.argv;
		lim = (int)n++;
	}
	/*
	 * Connect before any key is built: mirror keys carry the run_id of
	 * the Redis they are sent to, which a reconnection may change.
	 */
	up = (n > 0 || token_ok) && Fin_redis_available(ctx);
	if (up && ctx->npending_unmirror > 0)
		Fin_session_unmirror_pending(ctx);
	if (token_ok && up && ctx->redis_run_id[0] != '\0') {
		Fin_session_mirror_key(ctx, "s", out->principal.session_id, skey);
		Fin_session_mirror_key(ctx, "t", out->principal.session_id, tkey);
		get[0] = "GET";
		get[1] = skey;
		set[0] = "SET";
		set[1] = tkey;
		set[2] = "1";
		set[3] = "NX";
		set[4] = "EX";
		set[5] = TOUCH_EVERY;
		argv[n] = get;
		argc[n] = 2;
		mirror = (int)n++;
		argv[n] = set;
		argc[n] = 6;
		touched = (int)n++;
		if (in->cache_kind != NULL && in->cache_query != NULL &&
		    in->arena != NULL) {
			Fin_cache_lookup_cmd(ctx, out->principal.user_id,
			    in->cache_kind, in->cache_query, &cache, &out->cache);
			argv[n] = cache.gen;
			argc[n] = 2;
			gen = (int)n++;
			if (!in->cache_generation_only) {
				argv[n] = cache.page;
				argc[n] = 2;
				page = (int)n++;
			}
		}
	}
	redis_ok = n > 0 && up && Fin_redis_pipeline(ctx, n, argc,
	    (const char **const *)argv, NULL, rep) == FIN_OK;
	if (redis_ok && lim >= 0 && script_missing(rep[lim])) {
		/* Nothing was counted: load the script and ask again, once. */
		for (i = 0; i < n; i++)
			freeReplyObject(rep[i]);
		redis_ok = load_script(ctx) && Fin_redis_pipeline(ctx, n, argc,
		    (const char **const *)argv, NULL, rep) == FIN_OK;
	}
	if (lim >= 0 && (!redis_ok || !limits_reply(rep[lim], &lc, out))) {
		out->limits_failed_open = true;
		out->denied = -1;
		fin_metric_inc(FIN_M_RATELIMIT_FAIL_OPEN);
		fin_log(FIN_LOG_WARN, "ratelimit_fail_open",
		    "could not check rate limits: redis unavailable");
	}
	/* Before anything from Redis is believed: what PostgreSQL said. */
	heard = redis_ok && mirror >= 0 && Fin_db_announcements(ctx);
	if (redis_ok && mirror >= 0) {
		alive = rep[mirror] != NULL &&
		    rep[mirror]->type == REDIS_REPLY_STRING &&
		    rep[mirror]->len == strlen(out->principal.user_id) &&
		    memcmp(rep[mirror]->str, out->principal.user_id,
		    rep[mirror]->len) == 0;
		touch = rep[touched] != NULL &&
		    rep[touched]->type == REDIS_REPLY_STATUS;
		mirrored = alive;
		if (alive && (!heard || !Fin_session_mirror_trusted(ctx,
		    out->principal.session_id)))
			alive = false;
	}
	/* A page announced stale is neither read nor replaced here. */
	if (redis_ok && gen >= 0 &&
	    (!Fin_cache_trusted(ctx, out->principal.user_id) ||
	    Fin_cache_lookup_reply(rep[gen], page >= 0 ? rep[page] : NULL,
	    in->arena, &out->cache) == FIN_E_SERVICE_UNAVAILABLE))
		memset(&out->cache, 0, sizeof(out->cache));
	for (i = 0; redis_ok && i < n; i++)
		freeReplyObject(rep[i]);
	if (!token_ok)
		return FIN_OK;
	if (alive) {
		fin_metric_inc(FIN_M_SESSION_REDIS);
	} else {
		/* Mirror miss (or Redis down): PostgreSQL is the truth. */
		fin_metric_inc(FIN_M_SESSION_POSTGRES);
		e = Fin_session_alive_pg(ctx, &out->principal, &alive);
		if (e != FIN_OK) {
			out->auth = e;
			return FIN_OK;
		}
		if (!alive)
			return FIN_OK;
		if (redis_ok && !mirrored)
			Fin_session_mirror_set(ctx, &out->principal);
	}
	out->auth = FIN_OK;
	if (touch)
		Fin_session_touch(ctx, out->principal.session_id);
	return FIN_OK;
}

enum fin_err
fin_auth_authenticate(struct fin_ctx *ctx, const char *token,
    struct fin_principal *out)
{
	struct fin_gate	 in = { .token = token, .ip = "" };
	struct fin_gate_result r;
	enum fin_err	 e;

	if ((e = fin_gate_check(ctx, &in, &r)) != FIN_OK)
		return e;
	*out = r.principal;
	return r.auth;
}
