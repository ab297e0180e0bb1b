/*
 * PostgreSQL: one connection per worker, opened lazily, statements prepared
 * on first use, parameters only.  A connection that breaks outside a SQL
 * transaction is reopened and the statement retried once, so a database
 * restart is invisible to every request that arrives after it is back.
 *
 * Every answer is awaited with a deadline (await_answer): statement_timeout
 * ends a slow statement on the server, but a server that answers nothing
 * (stopped with SIGSTOP, frozen storage, a partition that drops packets)
 * would hold the worker, and every request queued behind it, for as long
 * as that lasts.  The connection is nonblocking for this; libpq's own
 * connect_timeout bounds connecting.
 */
#include "setup.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const struct fin_stmt stmt_ping = { "db_ping", "SELECT 1", 0 };

int64_t
Fin_db_answer_ms(const struct fin_config *cfg)
{
	return cfg->db_statement_timeout > 0 ?
	    cfg->db_statement_timeout + FIN_DB_ANSWER_SLACK_MS : 0;
}

static void
drop(struct fin_ctx *ctx)
{
	if (ctx->pg != NULL)
		PQfinish(ctx->pg);
	ctx->pg = NULL;
	ctx->nprepared = 0;
	ctx->in_sql_txn = false;
	ctx->pg_listening_ms = 0;
}

/*
 * Reads the answer to what was just sent (PQsend*) as PQexec would: the
 * last result, or the first error.  Waits at most wait_ms (0: no limit);
 * then the connection is dropped, since the statement is still in flight
 * and may yet run (so what timed out is never sent again), and NULL comes
 * back with *timed_out set.  NULL too when the connection broke.
 */
static PGresult *
await_answer(struct fin_ctx *ctx, bool sent, int64_t wait_ms,
    const char *what, bool *timed_out)
{
	struct pollfd	 pfd;
	PGresult	*last = NULL, *r;
	int64_t		 deadline, left;
	int		 flushed;

	*timed_out = false;
	if (!sent)
		return NULL;
	deadline = wait_ms > 0 ? fin_now_ms() + wait_ms : 0;
	pfd.fd = PQsocket(ctx->pg);
	for (;;) {
		if ((flushed = PQflush(ctx->pg)) < 0)
			break;
		if (flushed == 0 && !PQisBusy(ctx->pg)) {
			if ((r = PQgetResult(ctx->pg)) == NULL)
				return last;
			if (last != NULL &&
			    PQresultStatus(last) == PGRES_FATAL_ERROR) {
				PQclear(r);
			} else {
				PQclear(last);
				last = r;
			}
			continue;
		}
		left = deadline == 0 ? -1 : deadline - fin_now_ms();
		if (deadline != 0 && left <= 0) {
			fin_metric_inc(FIN_M_DB_ERRORS);
			fin_log(FIN_LOG_WARN, "db_timeout", "postgresql did not "
			    "answer %s within %lld ms: connection dropped", what,
			    (long long)wait_ms);
			drop(ctx);
			ctx->pg_quiet_until_ms = fin_now_ms() + FIN_DB_QUIET_MS;
			*timed_out = true;
			PQclear(last);
			return NULL;
		}
		pfd.events = POLLIN | (flushed == 1 ? POLLOUT : 0);
		pfd.revents = 0;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			break;
		if (pfd.revents != 0 && !PQconsumeInput(ctx->pg))
			break;
	}
	PQclear(last);
	/* Broken: libpq has closed it; anything else, close it here. */
	if (PQstatus(ctx->pg) == CONNECTION_OK)
		drop(ctx);
	return NULL;
}

/*
 * "2026-11-25 03:00:56.5+00" (timestamptz out in UTC, ISO style, the
 * fraction trimmed) as the API writes it: "2026-11-25T03:00:56Z", or
 * with micros "2026-11-25T03:00:56.500000Z" (the keyset's full value).
 */
bool
Fin_db_ts_api(const char *pg, bool micros, char *out, size_t outlen)
{
	static const char shape[] = "dddd-dd-dd dd:dd:dd";
	const size_t	 date = sizeof(shape) - 1;	/* 19 */
	const char	*p = pg + date;
	char		 frac[6] = { '0', '0', '0', '0', '0', '0' };
	size_t		 i, n = date + (micros ? 7 : 0) + 1;

	/* A row holds three of these: no printf, no locale. */
	for (i = 0; i < date; i++)
		if (shape[i] == 'd' ? (unsigned)(pg[i] - '0') > 9 :
		    pg[i] != shape[i])
			return false;
	if (*p == '.')
		for (p++, i = 0; (unsigned)(*p - '0') <= 9; p++, i++)
			if (i < sizeof(frac))
				frac[i] = *p;
	if (strcmp(p, "+00") != 0 || outlen < n + 1)
		return false;
	memcpy(out, pg, date);
	out[10] = 'T';
	if (micros) {
		out[date] = '.';
		memcpy(out + date + 1, frac, sizeof(frac));
	}
	out[n - 1] = 'Z';
	out[n] = '\0';
	return true;
}

enum fin_err
Fin_db_connect(struct fin_ctx *ctx)
{
	const char	*keys[5], *vals[5];
	char		 timeout[24], options[64], *perr = NULL;
	const char	*url;
	PGresult	*res = NULL;
	PQconninfoOption *parsed;
	bool		 expanded, timed_out = false;
	int64_t		 started;

	drop(ctx);
	if (fin_now_ms() < ctx->pg_quiet_until_ms)
		return FIN_E_SERVICE_UNAVAILABLE;
	/*
	 * libpq quotes a connection string it cannot parse in its message,
	 * password and all: say so without it.
	 */
	url = ctx->cfg->database_url;
	/* What libpq expands (else the whole string is a database name). */
	expanded = strchr(url, '=') != NULL ||
	    strncmp(url, "postgresql://", 13) == 0 ||
	    strncmp(url, "postgres://", 11) == 0;
	parsed = expanded ? PQconninfoParse(url, &perr) : NULL;
	if (expanded && parsed == NULL) {
		PQfreemem(perr);
		fin_metric_inc(FIN_M_DB_ERRORS);
		fin_log(FIN_LOG_ERROR, "db_connect_failed", "could not connect "
		    "to postgresql: DATABASE_URL is not a connection string "
		    "libpq can parse (not shown: it may hold a password)");
		return FIN_E_SERVICE_UNAVAILABLE;
	}
	if (parsed != NULL)
		PQconninfoFree(parsed);
	snprintf(timeout, sizeof(timeout), "%lld",
	    (long long)ctx->cfg->db_connect_timeout);
	snprintf(options, sizeof(options), "-c statement_timeout=%lld",
	    (long long)ctx->cfg->db_statement_timeout);
	/* dbname is expanded, so DATABASE_URL may be a URI or key=value. */
	keys[0] = "dbname";		vals[0] = ctx->cfg->database_url;
	keys[1] = "connect_timeout";	vals[1] = timeout;
	keys[2] = "application_name";	vals[2] = "libfinance";
	keys[3] = "options";		vals[3] = options;
	keys[4] = NULL;			vals[4] = NULL;
	started = fin_now_ms();
	ctx->pg = PQconnectdbParams(keys, vals, 1);
	/*
	 * Dates and timestamps are read as PostgreSQL writes them in UTC and
	 * ISO form (Fin_db_ts_api), which costs it far less than to_char().
	 * Set after the start-up: PGTZ or PGDATESTYLE would override options.
	 * Revocations are announced on a channel (db/migrations/0002), and
	 * so are caches a write could not invalidate (lib/cache.c).
	 */
	if (ctx->pg != NULL && PQstatus(ctx->pg) == CONNECTION_OK &&
	    PQsetnonblocking(ctx->pg, 1) == 0)
		res = await_answer(ctx, PQsendQuery(ctx->pg, "SET TimeZone = "
		    "'UTC'; SET DateStyle = 'ISO, YMD'; "
		    "LISTEN fin_session_revoked; LISTEN fin_cache_stale"),
		    ctx->cfg->db_connect_timeout * 1000, "the session set-up",
		    &timed_out);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		/* libpq's message names host and reason, never the password. */
		char	 msg[256];
		size_t	 n;

		snprintf(msg, sizeof(msg), "%s", timed_out ? "no answer to "
		    "the session set-up" : ctx->pg != NULL ?
		    PQerrorMessage(ctx->pg) : "out of memory, or lost");
		n = strlen(msg);
		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			msg[--n] = '\0';
		PQclear(res);
		fin_metric_inc(FIN_M_DB_ERRORS);
		fin_log(FIN_LOG_WARN, "db_connect_failed",
		    "could not connect to postgresql: %s", msg);
		drop(ctx);
		/* Refused is quick to ask again; silence is not. */
		if (fin_now_ms() - started >= ctx->cfg->db_connect_timeout * 1000)
			ctx->pg_quiet_until_ms = fin_now_ms() + FIN_DB_QUIET_MS;
		return FIN_E_SERVICE_UNAVAILABLE;
	}
	PQclear(res);
	ctx->pg_listening_ms = fin_now_ms();
	return FIN_OK;
}

bool
Fin_db_announcements(struct fin_ctx *ctx)
{
	int64_t		 now = fin_now_ms();
	PGnotify	*n;

	if (ctx->pg == NULL || ctx->pg_listening_ms == 0)
		return false;
	/* A connection that failed here is made again, listening anew. */
	if (!PQconsumeInput(ctx->pg))
		return false;
	while ((n = PQnotifies(ctx->pg)) != NULL) {
		Fin_heard_add(strcmp(n->relname, "fin_cache_stale") == 0 ?
		    &ctx->stale_caches : &ctx->revoked, n->extra, now);
		PQfreemem(n);
	}
	return true;
}

void
Fin_heard_add(struct fin_heard *h, const char *id, int64_t now)
{
	size_t	 i, slot, used;

	used = h->next < FIN_HEARD_MAX ? h->next : FIN_HEARD_MAX;
	/*
	 * Heard again (a user writing on through a Redis outage): kept once,
	 * as the newest, so that repeats cannot overflow the ring.
	 */
	for (i = 0; i < used; i++)
		if (h->ms[i] != 0 && strcmp(h->id[i], id) == 0)
			h->ms[i] = 0;
	slot = h->next++ % FIN_HEARD_MAX;
	/* Overwriting one still in its time: some id may be forgotten. */
	if (h->ms[slot] != 0 && now - h->ms[slot] < FIN_HEARD_TTL_MS)
		h->distrust_until_ms = now + FIN_HEARD_TTL_MS;
	snprintf(h->id[slot], sizeof(h->id[slot]), "%s", id);
	h->ms[slot] = now;
}

bool
Fin_heard_lately(const struct fin_heard *h, const char *id, int64_t now)
{
	size_t	 i, used;

	if (now < h->distrust_until_ms)
		return true;
	/* Usually none was heard for a whole TTL: nothing to look through. */
	if (h->next == 0 ||
	    now - h->ms[(h->next - 1) % FIN_HEARD_MAX] >= FIN_HEARD_TTL_MS)
		return false;
	used = h->next < FIN_HEARD_MAX ? h->next : FIN_HEARD_MAX;
	for (i = 0; i < used; i++)
		if (now - h->ms[i] < FIN_HEARD_TTL_MS &&
		    strcmp(h->id[i], id) == 0)
			return true;
	return false;
}

static bool
is_prepared(const struct fin_ctx *ctx, const struct fin_stmt *stmt)
{
	size_t	 i;

	for (i = 0; i < ctx->nprepared; i++)
		if (ctx->prepared[i] == stmt)
			return true;
	return false;
}

/* Maps a failed result once, here; the detail goes to the log only. */
static enum fin_err
map_failure(struct fin_ctx *ctx, const struct fin_stmt *stmt, PGresult *res)
{
	const char	*state, *msg;

	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(ctx->last_sqlstate, sizeof(ctx->last_sqlstate), "%s",
	    state != NULL ? state : "");
	if (ctx->pg == NULL || PQstatus(ctx->pg) != CONNECTION_OK)
		fin_metric_inc(FIN_M_DB_ERRORS);
	if (ctx->pg == NULL || PQstatus(ctx->pg) != CONNECTION_OK ||
	    (state != NULL && (strncmp(state, "08", 2) == 0 ||
	    strncmp(state, "57P0", 4) == 0 || strcmp(state, "53300") == 0)))
		return FIN_E_SERVICE_UNAVAILABLE;
	if (state != NULL && strcmp(state, "23505") == 0)
		return FIN_E_INTERNAL_ERROR;	/* caller checks unique violation */
	fin_metric_inc(FIN_M_DB_ERRORS);
	/*
	 * statement_timeout: the server is too busy for this query now (two
	 * summaries of ten million rows on two cores), not broken: 503 with
	 * Retry-After, as when PostgreSQL is down.
	 */
	if (state != NULL && strcmp(state, "57014") == 0) {
		fin_log(FIN_LOG_WARN, "db_timeout", "statement %s ran past "
		    "statement_timeout (%lld ms)", stmt->name,
		    (long long)ctx->cfg->db_statement_timeout);
		return FIN_E_SERVICE_UNAVAILABLE;
	}
	msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	fin_log(FIN_LOG_ERROR, "db_error", "could not run statement %s: %s (%s)",
	    stmt->name, msg != NULL ? msg : "no result",
	    state != NULL ? state : "-");
	return FIN_E_INTERNAL_ERROR;
}

static bool
connection_lost(const struct fin_ctx *ctx)
{
	return ctx->pg == NULL || PQstatus(ctx->pg) != CONNECTION_OK;
}

/*
 * One attempt: prepare if needed, then execute.  *timed_out: PostgreSQL
 * did not answer in time, and the statement may still run.
 */
static enum fin_err
exec_once(struct fin_ctx *ctx, const struct fin_stmt *stmt,
    const char *const *params, int64_t wait_ms, PGresult **out,
    bool *timed_out)
{
	PGresult	*res;
	ExecStatusType	 st;
	enum fin_err	 e;

	if (!is_prepared(ctx, stmt)) {
		if (ctx->nprepared == FIN_DB_MAX_STMTS) {
			fin_log(FIN_LOG_ERROR, "db_error", "could not prepare %s: "
			    "more than %d statements", stmt->name, FIN_DB_MAX_STMTS);
			return FIN_E_INTERNAL_ERROR;
		}
		res = await_answer(ctx, PQsendPrepare(ctx->pg, stmt->name,
		    stmt->sql, stmt->nparams, NULL), wait_ms, stmt->name,
		    timed_out);
		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
			e = map_failure(ctx, stmt, res);
			PQclear(res);
			return e;
		}
		PQclear(res);
		ctx->prepared[ctx->nprepared++] = stmt;
	}
	res = await_answer(ctx, PQsendQueryPrepared(ctx->pg, stmt->name,
	    stmt->nparams, params, NULL, NULL, 0), wait_ms, stmt->name,
	    timed_out);
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		ctx->last_sqlstate[0] = '\0';
		*out = res;
		return FIN_OK;
	}
	e = map_failure(ctx, stmt, res);
	PQclear(res);
	return e;
}

static enum fin_err
exec_retrying(struct fin_ctx *ctx, const struct fin_stmt *stmt,
    const char *const *params, int64_t wait_ms, PGresult **out,
    bool may_resend)
{
	enum fin_err	 e;
	int		 attempt;
	bool		 timed_out;

	*out = NULL;
	for (attempt = 0; attempt < 2; attempt++) {
		if (connection_lost(ctx)) {
			/* A transaction's work died with its connection. */
			if (ctx->in_sql_txn) {
				drop(ctx);
				return FIN_E_SERVICE_UNAVAILABLE;
			}
			e = Fin_db_connect(ctx);
			if (e != FIN_OK)
				return e;
		}
		e = exec_once(ctx, stmt, params, wait_ms, out, &timed_out);
		if (e == FIN_OK || !connection_lost(ctx))
			return e;
		/* A server that did not answer is not asked again now. */
		if (ctx->in_sql_txn || !may_resend || timed_out) {
			drop(ctx);
			return FIN_E_SERVICE_UNAVAILABLE;
		}
		fin_log(FIN_LOG_WARN, "db_reconnect",
		    "postgresql connection lost during %s: reconnecting",
		    stmt->name);
		drop(ctx);
	}
	return FIN_E_SERVICE_UNAVAILABLE;
}

enum fin_err
Fin_db_exec(struct fin_ctx *ctx, const struct fin_stmt *stmt,
    const char *const *params, PGresult **out)
{
	return exec_retrying(ctx, stmt, params, ctx->db_answer_ms, out, true);
}

enum fin_err
Fin_db_exec_once(struct fin_ctx *ctx, const struct fin_stmt *stmt,
    const char *const *params, PGresult **out)
{
	return exec_retrying(ctx, stmt, params, ctx->db_answer_ms, out, false);
}

static void
clear_result(void *p)
{
	PQclear(p);
}

enum fin_err
Fin_db_query(struct fin_ctx *ctx, struct fin_arena *a,
    const struct fin_stmt *stmt, const char *const *params, PGresult **out)
{
	enum fin_err	 e;

	e = Fin_db_exec(ctx, stmt, params, out);
	if (e != FIN_OK)
		return e;
	if (fin_arena_defer(a, clear_result, *out) != FIN_OK) {
		PQclear(*out);
		*out = NULL;
		return FIN_E_INTERNAL_ERROR;
	}
	return FIN_OK;
}

const char *
Fin_db_last_sqlstate(const struct fin_ctx *ctx)
{
	return ctx->last_sqlstate;
}

bool
Fin_db_unique_violation(const struct fin_ctx *ctx)
{
	return strcmp(ctx->last_sqlstate, "23505") == 0;
}

/*
 * Plain SQL, used only for BEGIN/COMMIT/ROLLBACK and migrations.  tag, when
 * not NULL, is the command tag success must answer with.
 */
static enum fin_err
simple(struct fin_ctx *ctx, const char *sql, const char *tag)
{
	PGresult	*res;
	ExecStatusType	 st;
	bool		 timed_out;

	if (connection_lost(ctx))
		return FIN_E_SERVICE_UNAVAILABLE;
	res = await_answer(ctx, PQsendQuery(ctx->pg, sql), ctx->db_answer_ms,
	    sql, &timed_out);
	if (res == NULL && connection_lost(ctx)) {
		if (!timed_out)
			fin_log(FIN_LOG_ERROR, "db_error", "could not run sql: "
			    "%s: connection lost", sql);
		return FIN_E_SERVICE_UNAVAILABLE;
	}
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if ((st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) && tag != NULL &&
	    strcmp(PQcmdStatus(res), tag) != 0) {
		/*
		 * COMMIT of a transaction an earlier statement aborted is no
		 * error to PostgreSQL: it rolls back and answers "ROLLBACK".
		 */
		fin_log(FIN_LOG_ERROR, "db_error", "could not run sql: %s "
		    "answered %s", sql, PQcmdStatus(res));
		PQclear(res);
		return FIN_E_INTERNAL_ERROR;
	}
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		PQclear(res);
		return FIN_OK;
	}
	{
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

		snprintf(ctx->last_sqlstate, sizeof(ctx->last_sqlstate), "%s",
		    state != NULL ? state : "");
		fin_log(FIN_LOG_ERROR, "db_error", "could not run sql: %s (%s)",
		    msg != NULL ? msg : PQerrorMessage(ctx->pg),
		    state != NULL ? state : "-");
	}
	PQclear(res);
	return connection_lost(ctx) ? FIN_E_SERVICE_UNAVAILABLE :
	    FIN_E_INTERNAL_ERROR;
}

enum fin_err
Fin_db_exec_script(struct fin_ctx *ctx, const char *sql)
{
	if (connection_lost(ctx) && Fin_db_connect(ctx) != FIN_OK)
		return FIN_E_SERVICE_UNAVAILABLE;
	return simple(ctx, sql, NULL);
}

enum fin_err
fin_db_begin(struct fin_ctx *ctx)
{
	enum fin_err	 e;

	if (ctx->in_sql_txn) {
		fin_log(FIN_LOG_ERROR, "db_error", "could not begin: already in a "
		    "transaction");
		return FIN_E_INTERNAL_ERROR;
	}
	/* BEGIN is where a dead connection is noticed and reopened. */
	if (connection_lost(ctx) && Fin_db_connect(ctx) != FIN_OK)
		return FIN_E_SERVICE_UNAVAILABLE;
	e = simple(ctx, "BEGIN", NULL);
	if (e != FIN_OK && connection_lost(ctx)) {
		if (Fin_db_connect(ctx) != FIN_OK)
			return FIN_E_SERVICE_UNAVAILABLE;
		e = simple(ctx, "BEGIN", NULL);
	}
	if (e == FIN_OK)
		ctx->in_sql_txn = true;
	return e;
}

enum fin_err
fin_db_commit(struct fin_ctx *ctx)
{
	enum fin_err	 e;

	if (!ctx->in_sql_txn)
		return FIN_E_INTERNAL_ERROR;
	e = simple(ctx, "COMMIT", "COMMIT");
	ctx->in_sql_txn = false;
	if (e != FIN_OK && !connection_lost(ctx))
		(void)simple(ctx, "ROLLBACK", NULL);
	return e;
}

void
fin_db_rollback(struct fin_ctx *ctx)
{
	if (!ctx->in_sql_txn)
		return;
	ctx->in_sql_txn = false;
	if (!connection_lost(ctx))
		(void)simple(ctx, "ROLLBACK", NULL);
}

enum fin_err
fin_db_ping(struct fin_ctx *ctx)
{
	PGresult	*res;
	enum fin_err	 e;
	int64_t		 wait_ms;

	/*
	 * /ready asks whether PostgreSQL can be reached: one that takes
	 * longer than a connection may take to answer SELECT 1 cannot.
	 */
	wait_ms = ctx->cfg->db_connect_timeout * 1000;
	if (ctx->db_answer_ms > 0 && ctx->db_answer_ms < wait_ms)
		wait_ms = ctx->db_answer_ms;
	/* Readiness must see a server that woke up, not wait out the quiet. */
	ctx->pg_quiet_until_ms = 0;
	e = exec_retrying(ctx, &stmt_ping, NULL, wait_ms, &res, true);
	PQclear(res);
	return e == FIN_OK ? FIN_OK : FIN_E_SERVICE_UNAVAILABLE;
}
