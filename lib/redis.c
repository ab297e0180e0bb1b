/*
 * Redis: one connection per worker with connect and command timeouts.
 * Redis only holds what may be lost (mirrors, counters, caches), so every
 * caller treats FIN_E_SERVICE_UNAVAILABLE as "carry on without it"; after a
 * failure the connection is not retried for FIN_REDIS_RETRY_MS, so a dead
 * Redis costs a request nothing but a clock read.
 */
#include "setup.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

#define URL_PART_MAX	256
#define REDIS_IDLE_MS	100	/* see closed_while_idle() */

struct redis_url {
	char	 host[URL_PART_MAX];	/* or the socket path when unix */
	char	 user[URL_PART_MAX];
	char	 password[URL_PART_MAX];
	int64_t	 port;
	int64_t	 db;
	bool	 unix_socket;
};

static bool
copy_part(char *dst, const char *src, size_t n)
{
	if (n >= URL_PART_MAX)
		return false;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return true;
}

/* redis://[[user]:password@]host[:port][/db] or unix:/path[?db=N] */
static bool
parse_url(const char *url, struct redis_url *u)
{
	const char	*p, *at, *slash, *colon, *end;
	char		 num[24];

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	if (strncmp(url, "unix:", 5) == 0) {
		u->unix_socket = true;
		p = url + 5;
		end = strstr(p, "?db=");
		if (end != NULL && !fin_parse_int64(end + 4, 0, 1000, &u->db))
			return false;
		return copy_part(u->host, p, end ? (size_t)(end - p) : strlen(p));
	}
	if (strncmp(url, "redis://", 8) != 0)
		return false;
	p = url + 8;
	at = strrchr(p, '@');
	if (at != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon != NULL) {
			if (!copy_part(u->user, p, (size_t)(colon - p)) ||
			    !copy_part(u->password, colon + 1, (size_t)(at - colon - 1)))
				return false;
		} else if (!copy_part(u->password, p, (size_t)(at - p)))
			return false;
		p = at + 1;
	}
	slash = strchr(p, '/');
	end = slash != NULL ? slash : p + strlen(p);
	colon = memchr(p, ':', (size_t)(end - p));
	if (colon != NULL) {
		if ((size_t)(end - colon - 1) >= sizeof(num))
			return false;
		memcpy(num, colon + 1, (size_t)(end - colon - 1));
		num[end - colon - 1] = '\0';
		if (!fin_parse_int64(num, 1, 65535, &u->port))
			return false;
	} else
		colon = end;
	if (!copy_part(u->host, p, (size_t)(colon - p)) || u->host[0] == '\0')
		return false;
	if (slash != NULL && slash[1] != '\0' &&
	    !fin_parse_int64(slash + 1, 0, 1000, &u->db))
		return false;
	return true;
}

static void
drop(struct fin_ctx *ctx)
{
	fin_metric_inc(FIN_M_REDIS_ERRORS);
	/* No key may be built for a Redis we are not connected to. */
	ctx->redis_run_id[0] = '\0';
	ctx->redis_unread = 0;
	ctx->redis_unflushed = false;
	if (ctx->redis != NULL)
		redisFree(ctx->redis);
	ctx->redis = NULL;
	ctx->redis_retry_at_ms = fin_now_ms() + FIN_REDIS_RETRY_MS;
}

static bool
reply_ok(redisReply *r)
{
	return r != NULL && r->type != REDIS_REPLY_ERROR;
}

static bool
parse_run_id(const char *info, char *out, size_t outsz)
{
	const char	*p = strstr(info, "run_id:");
	size_t		 n = 0;

	if (p == NULL)
		return false;
	p += 7;
	while (p[n] != '\0' && p[n] != '\r' && p[n] != '\n' && n + 1 < outsz) {
		out[n] = p[n];
		n++;
	}
	out[n] = '\0';
	return n > 0;
}

static enum fin_err
connect_redis(struct fin_ctx *ctx)
{
	struct redis_url u;
	struct timeval	 tv;
	redisReply	*r;
	char		 db[24];
	int64_t		 ms = ctx->cfg->redis_timeout_ms;

	if (!parse_url(ctx->cfg->redis_url, &u)) {
		fin_log(FIN_LOG_ERROR, "redis_config", "could not parse REDIS_URL");
		ctx->redis_retry_at_ms = fin_now_ms() + FIN_REDIS_RETRY_MS;
		return FIN_E_SERVICE_UNAVAILABLE;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	ctx->redis = u.unix_socket ? redisConnectUnixWithTimeout(u.host, tv) :
	    redisConnectWithTimeout(u.host, (int)u.port, tv);
	if (ctx->redis == NULL || ctx->redis->err) {
		fin_log(FIN_LOG_WARN, "redis_connect_failed",
		    "could not connect to redis at %s:%lld: %s", u.host,
		    (long long)u.port, ctx->redis ? ctx->redis->errstr :
		    "out of memory");
		sodium_memzero(u.password, sizeof(u.password));
		drop(ctx);
		return FIN_E_SERVICE_UNAVAILABLE;
	}
	redisSetTimeout(ctx->redis, tv);
	if (u.password[0] != '\0') {
		r = u.user[0] != '\0' ?
		    redisCommand(ctx->redis, "AUTH %s %s", u.user, u.password) :
		    redisCommand(ctx->redis, "AUTH %s", u.password);
		sodium_memzero(u.password, sizeof(u.password));
		if (!reply_ok(r)) {
			fin_log(FIN_LOG_ERROR, "redis_connect_failed",
			    "could not authenticate to redis at %s", u.host);
			freeReplyObject(r);
			drop(ctx);
			return FIN_E_SERVICE_UNAVAILABLE;
		}
		freeReplyObject(r);
	}
	/* Mirror keys are scoped to this Redis process (see internal.h). */
	r = redisCommand(ctx->redis, "INFO server");
	if (!reply_ok(r) || r->type != REDIS_REPLY_STRING ||
	    !parse_run_id(r->str, ctx->redis_run_id, sizeof(ctx->redis_run_id))) {
		fin_log(FIN_LOG_ERROR, "redis_connect_failed",
		    "could not read run_id from redis at %s", u.host);
		freeReplyObject(r);
		drop(ctx);
		return FIN_E_SERVICE_UNAVAILABLE;
	}
	freeReplyObject(r);
	snprintf(ctx->redis_last_run_id, sizeof(ctx->redis_last_run_id), "%s",
	    ctx->redis_run_id);
	if (u.db != 0) {
		snprintf(db, sizeof(db), "%lld", (long long)u.db);
		r = redisCommand(ctx->redis, "SELECT %s", db);
		if (!reply_ok(r)) {
			freeReplyObject(r);
			drop(ctx);
			return FIN_E_SERVICE_UNAVAILABLE;
		}
		freeReplyObject(r);
	}
	return FIN_OK;
}

/*
 * Whether Redis closed this connection while it lay idle (it restarted):
 * then it is readable with no reply owed.  Asked only after a pause, so
 * that a busy worker pays no system call for it.
 */
static bool
closed_while_idle(const struct fin_ctx *ctx, int64_t now)
{
	struct pollfd	 pfd = { .fd = ctx->redis->fd, .events = POLLIN };

	if (now - ctx->redis_used_ms < REDIS_IDLE_MS ||
	    ctx->redis_unread > 0 || ctx->redis_unflushed)
		return false;
	return poll(&pfd, 1, 0) > 0;
}

static enum fin_err
ensure(struct fin_ctx *ctx)
{
	int64_t		 now = fin_now_ms();
	enum fin_err	 e;

	if (ctx->redis != NULL) {
		if (!closed_while_idle(ctx, now)) {
			ctx->redis_used_ms = now;
			return FIN_OK;
		}
		/*
		 * Found before use: the first request after a restart gets the
		 * new Redis, not a failure and the backoff (its keys carry the
		 * new run_id, since none is built before this).
		 */
		fin_log(FIN_LOG_INFO, "redis_reconnect", "redis closed the "
		    "idle connection: reconnecting");
		redisFree(ctx->redis);
		ctx->redis = NULL;
		ctx->redis_run_id[0] = '\0';
	} else if (now < ctx->redis_retry_at_ms) {
		return FIN_E_SERVICE_UNAVAILABLE;
	}
	if ((e = connect_redis(ctx)) == FIN_OK)
		ctx->redis_used_ms = now;
	return e;
}

bool
Fin_redis_available(struct fin_ctx *ctx)
{
	return ensure(ctx) == FIN_OK;
}

enum fin_err
Fin_redis_pipeline(struct fin_ctx *ctx, size_t n, const int *argc,
    const char **const *argv, const size_t *const *argvlen,
    redisReply **replies)
{
	size_t	 i;
	void	*r;

	for (i = 0; i < n; i++)
		replies[i] = NULL;
	if (ensure(ctx) != FIN_OK)
		return FIN_E_SERVICE_UNAVAILABLE;
	for (i = 0; i < n; i++)
		if (redisAppendCommandArgv(ctx->redis, argc[i], argv[i],
		    argvlen != NULL ? argvlen[i] : NULL) != REDIS_OK)
			goto lost;
	/* Replies to what was sent without waiting come first, in order. */
	for (; ctx->redis_unread > 0; ctx->redis_unread--) {
		if (redisGetReply(ctx->redis, &r) != REDIS_OK)
			goto lost;
		freeReplyObject(r);
	}
	ctx->redis_unflushed = false;
	for (i = 0; i < n; i++) {
		if (redisGetReply(ctx->redis, &r) != REDIS_OK)
			goto lost;
		replies[i] = r;
	}
	return FIN_OK;
lost:
	fin_log(FIN_LOG_WARN, "redis_error", "could not talk to redis: %s",
	    ctx->redis->errstr);
	for (i = 0; i < n; i++) {
		freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
	drop(ctx);
	return FIN_E_SERVICE_UNAVAILABLE;
}

void
Fin_redis_send_later(struct fin_ctx *ctx, int argc, const char **argv,
    const size_t *argvlen)
{
	if (ensure(ctx) != FIN_OK)
		return;
	if (redisAppendCommandArgv(ctx->redis, argc, argv, argvlen) != REDIS_OK) {
		drop(ctx);
		return;
	}
	ctx->redis_unread++;
	ctx->redis_unflushed = true;
}

void
fin_redis_flush(struct fin_ctx *ctx)
{
	int	 done = 0;

	if (ctx->redis == NULL || !ctx->redis_unflushed)
		return;
	while (!done)
		if (redisBufferWrite(ctx->redis, &done) != REDIS_OK) {
			fin_log(FIN_LOG_WARN, "redis_error",
			    "could not talk to redis: %s", ctx->redis->errstr);
			drop(ctx);
			return;
		}
	ctx->redis_unflushed = false;
}

bool
fin_redis_unflushed(const struct fin_ctx *ctx)
{
	return ctx->redis_unflushed;
}

enum fin_err
Fin_redis_command(struct fin_ctx *ctx, redisReply **out, int argc,
    const char **argv, const size_t *argvlen)
{
	const char *const *av = argv;

	return Fin_redis_pipeline(ctx, 1, &argc, (const char **const *)&av,
	    argvlen != NULL ? &argvlen : NULL, out);
}

enum fin_err
fin_redis_ping(struct fin_ctx *ctx)
{
	const char	*argv[] = { "PING" };
	redisReply	*r;
	enum fin_err	 e;

	/* Readiness must see a Redis that came back, not wait out the backoff. */
	ctx->redis_retry_at_ms = 0;
	e = Fin_redis_command(ctx, &r, 1, argv, NULL);
	if (e != FIN_OK)
		return e;
	e = reply_ok(r) ? FIN_OK : FIN_E_SERVICE_UNAVAILABLE;
	freeReplyObject(r);
	return e;
}
