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

#include "internal.h"

#define TOUCH_EVERY	"60"	/* last_used_at is written at most this often */
#define LIMIT_KEY_MAX	192
#define MAX_CMDS	(FIN_LIMIT__MAX + 3)

/*
 * KEYS[1] the limit's key; ARGV[1] period in ms; ARGV[2] limit.
 * Returns {allowed, remaining, retry_after_s, reset_s}.
 */
static const char gcra_lua[] =
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"local period = tonumber(ARGV[1]) "
	"local limit = tonumber(ARGV[2]) "
	"local interval = period / limit "
	"local tat = tonumber(redis.call('GET', KEYS[1])) or now "
	"if tat < now then tat = now end "
	"local ahead = tat + interval - now "
	"if ahead > period then "
	"  return {0, 0, math.ceil((ahead - period) / 1000), "
	"    math.ceil((tat - now) / 1000)} "
	"end "
	"redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil(ahead)) "
	"return {1, math.floor((period - ahead) / interval), 0, math.ceil(ahead / 1000)}";

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

/* One EVAL command's arguments, in caller-owned storage. */
struct limit_cmd {
	char		 key[LIMIT_KEY_MAX];
	char		 period[24];
	char		 limit[24];
	const char	*argv[6];
};

static void
limit_cmd(const struct fin_config *cfg, enum fin_limit_kind k,
    const char *subject, struct limit_cmd *c, struct fin_limit_result *r)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	char		 hex[33];
	int64_t		 limit, period;

	limit_params(cfg, k, &limit, &period);
	/* Subjects are hashed: no email address or IP sits in Redis as text. */
	EVP_Digest(subject, strlen(subject), md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < 16 && i < mdlen; i++)
		snprintf(hex + i * 2, 3, "%02x", md[i]);
	snprintf(c->key, sizeof(c->key), "fin:rl:%s:%s", limit_names[k], hex);
	snprintf(c->period, sizeof(c->period), "%lld", (long long)period * 1000);
	snprintf(c->limit, sizeof(c->limit), "%lld", (long long)limit);
	c->argv[0] = "EVAL";
	c->argv[1] = gcra_lua;
	c->argv[2] = "1";
	c->argv[3] = c->key;
	c->argv[4] = c->period;
	c->argv[5] = c->limit;
	memset(r, 0, sizeof(*r));
	r->limit = limit;
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

enum fin_err
fin_gate_check(struct fin_ctx *ctx, const struct fin_gate *in,
    struct fin_gate_result *out)
{
	struct limit_cmd cmds[FIN_LIMIT__MAX];
	struct fin_cache_lookup cache;
	char		 skey[FIN_MIRROR_KEY_MAX], tkey[FIN_MIRROR_KEY_MAX];
	const char	*get[2], *set[6];
	const char	**argv[MAX_CMDS];
	int		 argc[MAX_CMDS], which[MAX_CMDS];
	redisReply	*rep[MAX_CMDS];
	struct fin_jwt_claims c;
	bool		 token_ok = false, alive = false, touch = false;
	bool		 redis_ok, up;
	size_t		 n = 0, i;
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
	for (k = 0; k < FIN_LIMIT__MAX; k++) {
		if ((in->limits & (1u << k)) == 0)
			continue;
		if (k == FIN_LIMIT_USER && !token_ok)
			continue;
		limit_cmd(ctx->cfg, (enum fin_limit_kind)k,
		    subject_of(in, &out->principal, (enum fin_limit_kind)k),
		    &cmds[k], &out->limits[k]);
		argv[n] = cmds[k].argv;
		argc[n] = 6;
		which[n++] = k;
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
		which[n++] = -1;
		argv[n] = set;
		argc[n] = 6;
		which[n++] = -2;
		if (in->cache_kind != NULL && in->cache_query != NULL &&
		    in->arena != NULL) {
			Fin_cache_lookup_cmd(ctx, out->principal.user_id,
			    in->cache_kind, in->cache_query, &cache, &out->cache);
			argv[n] = cache.argv;
			argc[n] = 6;
			which[n++] = -3;
		}
	}
	redis_ok = n > 0 && up && Fin_redis_pipeline(ctx, n, argc,
	    (const char **const *)argv, NULL, rep) == FIN_OK;
	if (n > 0 && !redis_ok) {
		out->limits_failed_open = in->limits != 0;
		if (out->limits_failed_open)
			fin_metric_inc(FIN_M_RATELIMIT_FAIL_OPEN);
		if (out->limits_failed_open)
			fin_log(FIN_LOG_WARN, "ratelimit_fail_open",
			    "could not check rate limits: redis unavailable");
	}
	for (i = 0; redis_ok && i < n; i++) {
		if (which[i] >= 0) {
			if (!limit_reply(rep[i], &out->limits[which[i]]))
				out->limits_failed_open = true;
			else if (!out->limits[which[i]].allowed && out->denied < 0)
				out->denied = which[i];
		} else if (which[i] == -1)
			alive = rep[i] != NULL && rep[i]->type == REDIS_REPLY_STRING &&
			    rep[i]->len == strlen(out->principal.user_id) &&
			    memcmp(rep[i]->str, out->principal.user_id, rep[i]->len) == 0;
		else if (which[i] == -2)
			touch = rep[i] != NULL && rep[i]->type == REDIS_REPLY_STATUS;
		else if (Fin_cache_lookup_reply(rep[i], in->arena,
		    &out->cache) == FIN_E_SERVICE_UNAVAILABLE)
			memset(&out->cache, 0, sizeof(out->cache));
		freeReplyObject(rep[i]);
	}
	if (!token_ok)
		return FIN_OK;
	if (!alive) {
		/* Mirror miss (or Redis down): PostgreSQL is the truth. */
		e = Fin_session_alive_pg(ctx, &out->principal, &alive);
		if (e != FIN_OK) {
			out->auth = e;
			return FIN_OK;
		}
		if (!alive)
			return FIN_OK;
		if (redis_ok)
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
