/*
 * Sessions: one per login and device, durable in PostgreSQL, mirrored in
 * Redis so that "is this session alive?" costs one Redis round trip per
 * request.  The mirror only ever says "alive, checked recently": a key is
 * written after PostgreSQL said so, expires after MIRROR_TTL, is deleted
 * on revocation, and carries Redis's run_id so that a Redis restarted from
 * an old snapshot starts empty.  PostgreSQL's announcement of a revocation
 * outranks it (Fin_session_mirror_trusted).  With Redis down, PostgreSQL
 * answers.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "internal.h"

#define MIRROR_TTL_S	60	/* seconds a mirrored "alive" may be trusted */
#define STR(x)		STR_(x)
#define STR_(x)		#x
#define MIRROR_TTL	STR(MIRROR_TTL_S)
#define TOMBSTONE_TTL	"120"	/* longer than any "alive" it replaces */
#define UNMIRROR_PATIENCE_MS 2000
#define REFRESH_BYTES	32	/* 256 bits, API.md */
#define KEY_MAX		FIN_MIRROR_KEY_MAX

static const struct fin_stmt stmt_insert = {
	"session_insert",
	"INSERT INTO sessions (user_id, ip, user_agent) VALUES ($1, $2, $3)"
	" RETURNING id", 3 };
static const struct fin_stmt stmt_refresh_insert = {
	"refresh_insert",
	"INSERT INTO refresh_tokens (token_hash, session_id, expires_at)"
	" VALUES ($1::bytea, $2, now() + $3::bigint * interval '1 second')", 3 };
static const struct fin_stmt stmt_alive = {
	"session_alive",
	"SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id"
	" WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL"
	"   AND u.deleted_at IS NULL", 2 };
static const struct fin_stmt stmt_touch = {
	"session_touch",
	"UPDATE sessions SET last_used_at = now()"
	" WHERE id = $1 AND revoked_at IS NULL", 1 };
static const struct fin_stmt stmt_revoke = {
	"session_revoke",
	"UPDATE sessions SET revoked_at = now(), revoked_reason = $3"
	" WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id", 3 };
static const struct fin_stmt stmt_revoke_all = {
	"session_revoke_all",
	"UPDATE sessions SET revoked_at = now(), revoked_reason = $3"
	" WHERE user_id = $1 AND revoked_at IS NULL"
	"   AND id IS DISTINCT FROM $2::uuid RETURNING id", 3 };
static const struct fin_stmt stmt_list = {
	"session_list",
	"SELECT s.id, s.ip, s.user_agent, " SQL_TS("s.created_at") ", "
	SQL_TS("s.last_used_at")
	" FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL"
	"   AND EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id"
	"     AND r.rotated_at IS NULL AND r.expires_at > now())"
	" ORDER BY s.created_at DESC, s.id", 1 };

/* ------------------------------------------------------------------ */
/* Tokens                                                              */
/* ------------------------------------------------------------------ */

bool
Fin_refresh_hash(const struct fin_config *cfg, const char *token, char out[80])
{
	unsigned char	 md[FIN_HMAC_SHA256_LEN];
	size_t		 i;

	/* Keyed, so a stolen table alone cannot confirm a guessed token. */
	if (!Fin_hmac_sha256(cfg->refresh_token_secret,
	    strlen(cfg->refresh_token_secret), token, strlen(token), md))
		return false;
	memcpy(out, "\\x", 2);
	for (i = 0; i < sizeof(md); i++)
		snprintf(out + 2 + i * 2, 3, "%02x", md[i]);
	return true;
}

enum fin_err
Fin_refresh_issue(struct fin_ctx *ctx, const char *session_id,
    char token[FIN_REFRESH_TOKEN_MAX])
{
	unsigned char	 raw[REFRESH_BYTES];
	char		 hash[80], ttl[24];
	const char	*p[3];
	PGresult	*res;
	enum fin_err	 e;

	randombytes_buf(raw, sizeof(raw));
	if (fin_base64url_encode(raw, sizeof(raw), token,
	    FIN_REFRESH_TOKEN_MAX) == 0) {
		sodium_memzero(raw, sizeof(raw));
		return FIN_E_INTERNAL_ERROR;
	}
	sodium_memzero(raw, sizeof(raw));
	if (!Fin_refresh_hash(ctx->cfg, token, hash))
		return FIN_E_INTERNAL_ERROR;
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ctx->cfg->refresh_token_ttl);
	p[0] = hash;
	p[1] = session_id;
	p[2] = ttl;
	e = Fin_db_exec(ctx, &stmt_refresh_insert, p, &res);
	PQclear(res);
	return e;
}

enum fin_err
Fin_access_token(struct fin_ctx *ctx, const char *user_id,
    const char *session_id, struct fin_tokens *out)
{
	struct fin_jwt_claims c;

	memset(&c, 0, sizeof(c));
	snprintf(c.sub, sizeof(c.sub), "%s", user_id);
	snprintf(c.sid, sizeof(c.sid), "%s", session_id);
	fin_uuid_v4(c.jti);
	c.iat = (int64_t)time(NULL);
	c.exp = c.iat + ctx->cfg->access_token_ttl;
	out->expires_in = ctx->cfg->access_token_ttl;
	return fin_jwt_sign(ctx->cfg, &c, out->access_token,
	    sizeof(out->access_token));
}

enum fin_err
Fin_session_start(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, char session_id[37], struct fin_tokens *out)
{
	char		 ua[513];
	const char	*p[3];
	PGresult	*res;
	enum fin_err	 e;
	size_t		 n;

	/* A user agent is display data: keep 512 bytes, on a UTF-8 boundary. */
	n = strnlen(client->user_agent, 512);
	while (n > 0 && client->user_agent[n] != '\0' &&
	    ((unsigned char)client->user_agent[n] & 0xC0) == 0x80)
		n--;
	memcpy(ua, client->user_agent, n);
	ua[n] = '\0';
	if (!fin_utf8_valid(ua, n))
		ua[0] = '\0';
	p[0] = user_id;
	p[1] = client->ip;
	p[2] = ua;
	e = Fin_db_exec(ctx, &stmt_insert, p, &res);
	if (e != FIN_OK)
		return e;
	snprintf(session_id, 37, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	e = Fin_refresh_issue(ctx, session_id, out->refresh_token);
	if (e != FIN_OK)
		return e;
	return Fin_access_token(ctx, user_id, session_id, out);
}

/* ------------------------------------------------------------------ */
/* The Redis mirror                                                    */
/* ------------------------------------------------------------------ */

static void
mirror_key(const struct fin_ctx *ctx, const char *kind, const char *sid,
    char out[KEY_MAX])
{
	snprintf(out, KEY_MAX, "fin:%s:%s:%s", kind, ctx->redis_run_id, sid);
}

/* One tombstone write; false when Redis did not take it. */
static bool
tombstone(struct fin_ctx *ctx, const char *session_id)
{
	char		 key[KEY_MAX];
	const char	*argv[] = { "SET", key, "revoked", "EX", TOMBSTONE_TTL };
	redisReply	*r;
	bool		 ok;

	if (!Fin_redis_available(ctx))
		return false;
	mirror_key(ctx, "s", session_id, key);
	if (Fin_redis_command(ctx, &r, 5, argv, NULL) != FIN_OK)
		return false;
	ok = r->type == REDIS_REPLY_STATUS;
	freeReplyObject(r);
	return ok;
}

/*
 * Replaces a session's "alive" entry with a tombstone that outlives any
 * entry: a request that read PostgreSQL just before the revocation cannot
 * write "alive" back over it (mirror entries are only ever added with NX).
 * A Redis that stalls gets retries until deadline (the revoking request
 * waits, nobody else); if it still fails the session id is kept and
 * written at this worker's next contact with Redis.  A Redis that was
 * restarted meanwhile has a new run_id, and with it an empty mirror.
 */
static void
unmirror_until(struct fin_ctx *ctx, const char *session_id, int64_t deadline)
{
	struct timespec	 pause = { 0, 100 * 1000000L };

	for (;;) {
		if (tombstone(ctx, session_id))
			return;
		if (fin_now_ms() >= deadline)
			break;
		nanosleep(&pause, NULL);
		ctx->redis_retry_at_ms = 0;	/* no backoff for this one */
	}
	fin_log(FIN_LOG_WARN, "unmirror_deferred", "could not mark session %s "
	    "revoked in redis: retrying at the next contact", session_id);
	if (ctx->npending_unmirror < FIN_PENDING_UNMIRROR_MAX) {
		snprintf(ctx->pending_unmirror[ctx->npending_unmirror++], 37, "%s",
		    session_id);
	}
}

void
Fin_session_unmirror(struct fin_ctx *ctx, const char *session_id)
{
	unmirror_until(ctx, session_id, fin_now_ms() + UNMIRROR_PATIENCE_MS);
}

void
Fin_session_unmirror_pending(struct fin_ctx *ctx)
{
	while (ctx->npending_unmirror > 0 &&
	    tombstone(ctx, ctx->pending_unmirror[ctx->npending_unmirror - 1]))
		ctx->npending_unmirror--;
}

static void
unmirror_rows(struct fin_ctx *ctx, PGresult *res)
{
	int64_t	 deadline = fin_now_ms() + UNMIRROR_PATIENCE_MS;
	int	 i;

	/*
	 * One patience for them all: with Redis down, a user with many
	 * sessions would otherwise hold the worker, and the SQL transaction
	 * with its row locks, for UNMIRROR_PATIENCE_MS per session.
	 */
	for (i = 0; i < PQntuples(res); i++)
		unmirror_until(ctx, PQgetvalue(res, i, 0), deadline);
}

enum fin_err
Fin_sessions_revoke_all(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *keep, const char *reason)
{
	const char	*p[3] = { user_id, keep, reason };
	PGresult	*res;
	enum fin_err	 e;

	(void)client;
	e = Fin_db_exec(ctx, &stmt_revoke_all, p, &res);
	if (e != FIN_OK)
		return e;
	/*
	 * Tombstones now, before the caller commits, are safe: until then
	 * PostgreSQL still says alive (and is asked), afterwards it says
	 * revoked, and nothing can mirror "alive" over a tombstone.
	 */
	unmirror_rows(ctx, res);
	PQclear(res);
	return FIN_OK;
}

void
Fin_session_mirror_key(const struct fin_ctx *ctx, const char *kind,
    const char *sid, char out[FIN_MIRROR_KEY_MAX])
{
	mirror_key(ctx, kind, sid, out);
}

void
Fin_session_mirror_set(struct fin_ctx *ctx, const struct fin_principal *pr)
{
	char		 key[KEY_MAX];
	const char	*argv[] = { "SET", key, pr->user_id, "EX", MIRROR_TTL, "NX" };
	redisReply	*r;

	/* NX: never over a tombstone a revocation wrote meanwhile. */
	mirror_key(ctx, "s", pr->session_id, key);
	if (Fin_redis_command(ctx, &r, 6, argv, NULL) == FIN_OK)
		freeReplyObject(r);
}

/*
 * PostgreSQL announces every revocation to every listening worker
 * (db/migrations/0002): the revoking worker's tombstone may never reach
 * Redis, and then the old "alive" entry would be believed until it
 * expires.  An announcement is kept for as long as such an entry can
 * live.  A worker that was not listening for all of that time may have
 * missed one, and so may a worker whose list overflowed: both believe no
 * entry until a whole TTL has passed.
 */
_Static_assert(MIRROR_TTL_S * 1000 <= FIN_HEARD_TTL_MS,
    "an announcement is kept as long as the entry it outranks");

bool
Fin_session_mirror_trusted(const struct fin_ctx *ctx, const char *session_id)
{
	int64_t		 now = fin_now_ms();

	if (ctx->pg_listening_ms == 0 ||
	    now - ctx->pg_listening_ms < MIRROR_TTL_S * 1000)
		return false;
	return !Fin_heard_lately(&ctx->revoked, session_id, now);
}

enum fin_err
Fin_session_alive_pg(struct fin_ctx *ctx, const struct fin_principal *pr,
    bool *alive)
{
	const char	*p[2] = { pr->session_id, pr->user_id };
	PGresult	*res;
	enum fin_err	 e;

	*alive = false;
	if ((e = Fin_db_exec(ctx, &stmt_alive, p, &res)) != FIN_OK)
		return e;
	*alive = PQntuples(res) == 1;
	PQclear(res);
	return FIN_OK;
}

void
Fin_session_touch(struct fin_ctx *ctx, const char *session_id)
{
	const char	*p[1] = { session_id };
	PGresult	*res;

	if (Fin_db_exec(ctx, &stmt_touch, p, &res) == FIN_OK)
		PQclear(res);
}

/* ------------------------------------------------------------------ */
/* Listing and revoking                                                */
/* ------------------------------------------------------------------ */

enum fin_err
fin_sessions_list(struct fin_ctx *ctx, const struct fin_principal *pr,
    struct json_object **out)
{
	const char	*p[1] = { pr->user_id };
	PGresult	*res;
	struct json_object *data, *o;
	enum fin_err	 e;
	int		 i;

	*out = NULL;
	e = Fin_db_exec(ctx, &stmt_list, p, &res);
	if (e != FIN_OK)
		return e;
	data = json_object_new_array();
	for (i = 0; i < PQntuples(res); i++) {
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(PQgetvalue(res, i, 0)));
		json_object_object_add(o, "ip", json_object_new_string(PQgetvalue(res, i, 1)));
		json_object_object_add(o, "user_agent", json_object_new_string(PQgetvalue(res, i, 2)));
		json_object_object_add(o, "created_at", json_object_new_string(PQgetvalue(res, i, 3)));
		json_object_object_add(o, "last_used_at", json_object_new_string(PQgetvalue(res, i, 4)));
		json_object_object_add(o, "current", json_object_new_boolean(
		    strcmp(PQgetvalue(res, i, 0), pr->session_id) == 0));
		json_object_array_add(data, o);
	}
	PQclear(res);
	*out = json_object_new_object();
	json_object_object_add(*out, "data", data);
	return FIN_OK;
}

enum fin_err
fin_session_revoke(struct fin_ctx *ctx, const struct fin_client *client,
    const struct fin_principal *pr, const char *session_id)
{
	const char	*p[3];
	PGresult	*res;
	struct json_object *d;
	enum fin_err	 e;
	bool		 found;

	/* Not a UUID: the same 404 as someone else's session. */
	if (!fin_valid_uuid(session_id))
		return FIN_E_NOT_FOUND;
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	p[0] = session_id;
	p[1] = pr->user_id;
	p[2] = strcmp(session_id, pr->session_id) == 0 ? "logout" : "revoked";
	e = Fin_db_exec(ctx, &stmt_revoke, p, &res);
	if (e != FIN_OK)
		goto fail;
	found = PQntuples(res) == 1;
	PQclear(res);
	if (!found) {
		e = FIN_E_NOT_FOUND;
		goto fail;
	}
	d = json_object_new_object();
	json_object_object_add(d, "session_id", json_object_new_string(session_id));
	e = Fin_audit(ctx, client, pr->user_id, "session_revoked", d);
	json_object_put(d);
	if (e != FIN_OK)
		goto fail;
	if ((e = fin_db_commit(ctx)) != FIN_OK)
		return e;
	Fin_session_unmirror(ctx, session_id);
	return FIN_OK;
fail:
	fin_db_rollback(ctx);
	return e;
}

enum fin_err
fin_sessions_revoke_others(struct fin_ctx *ctx, const struct fin_client *client,
    const struct fin_principal *pr)
{
	struct json_object *d;
	enum fin_err	 e;

	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	e = Fin_sessions_revoke_all(ctx, client, pr->user_id, pr->session_id,
	    "revoked");
	if (e == FIN_OK) {
		d = json_object_new_object();
		json_object_object_add(d, "scope", json_object_new_string("others"));
		e = Fin_audit(ctx, client, pr->user_id, "session_revoked", d);
		json_object_put(d);
	}
	if (e != FIN_OK) {
		fin_db_rollback(ctx);
		return e;
	}
	return fin_db_commit(ctx);
}
