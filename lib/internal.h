/*
 * Declarations shared between lib/ files and the unit tests, never
 * included from src/.  Names are Fin_<module>_<verb>.
 */
#ifndef FIN_INTERNAL_H
#define FIN_INTERNAL_H

#include "setup.h"

#include <libpq-fe.h>
#include <hiredis/hiredis.h>

#include "finance.h"

/* ------------------------------------------------------------------ */
/* PostgreSQL                                                          */
/* ------------------------------------------------------------------ */

/*
 * A prepared statement.  Each module defines its own as static const
 * objects next to the functions that run them; lib/db.c prepares each one
 * the first time a connection runs it.  name must be unique.
 */
struct fin_stmt {
	const char	*name;
	const char	*sql;
	int		 nparams;
};

#define FIN_DB_MAX_STMTS	128

/*
 * A transaction as the API shows it (Fin_txn_row_json) and the exports
 * read it, in FIN_XC_* order.  The timestamps come as PostgreSQL writes
 * them (the session is UTC, ISO: lib/db.c) and C puts them in the API's
 * form (Fin_db_ts_api): to_char() on every row cost PostgreSQL a third
 * of a list query.  created_at is also the keyset's, to the microsecond.
 */
#define FIN_TXN_COLS \
	"id, amount, currency, description, category, occurred_on, " \
	"created_at, updated_at, deleted_at"
/* "2026-11-25T03:00:56Z" (or ".500000Z" with micros) and its NUL. */
#define FIN_TS_API_MAX	28
bool		 Fin_db_ts_api(const char *pg, bool micros, char *out,
		    size_t outlen);

/* A timestamptz column as RFC 3339 UTC with Z, the API's only time format. */
#define SQL_TS(col)	"to_char(" col " AT TIME ZONE 'UTC', " \
			"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	/* distinct statements one connection prepares */

#define FIN_FLAGS_MAX		64
#define FIN_FLAG_KEY_MAX	65

struct fin_flag_state {
	char		 key[FIN_FLAG_KEY_MAX];
	bool		 enabled;
	int		 rollout_percent;
};

/*
 * Ids PostgreSQL announced lately, each kept for FIN_HEARD_TTL_MS, as long
 * as a mirror entry or a cached page can live in Redis: a ring, and when
 * it overflows within that time, distrust of every id.
 */
#define FIN_HEARD_MAX	256
#define FIN_HEARD_TTL_MS (60 * 1000)
#define FIN_HEARD_ID_MAX 96	/* a uuid, a space, a Redis run_id */
struct fin_heard {
	char		 id[FIN_HEARD_MAX][FIN_HEARD_ID_MAX];
	int64_t		 ms[FIN_HEARD_MAX];	/* when heard (monotonic ms) */
	size_t		 next;
	int64_t		 distrust_until_ms;
};

struct fin_ctx {
	const struct fin_config *cfg;
	PGconn		*pg;
	bool		 in_sql_txn;	/* between fin_db_begin and commit/rollback */
	/*
	 * How long an answer is waited for before the connection is given up
	 * (lib/db.c); 0: as long as it takes (migrations).
	 */
	int64_t		 db_answer_ms;
	int64_t		 pg_quiet_until_ms;	/* see FIN_DB_QUIET_MS */
	const struct fin_stmt *prepared[FIN_DB_MAX_STMTS];
	size_t		 nprepared;
	char		 last_sqlstate[6];
	redisContext	*redis;
	int64_t		 redis_retry_at_ms;	/* no reconnect before this (monotonic ms) */
	int64_t		 redis_used_ms;		/* last handed out (monotonic ms) */
	/*
	 * run_id of the Redis process we talk to.  Mirror keys carry it, so a
	 * Redis restarted from an old snapshot starts with an empty mirror and
	 * can never bring a revoked session back to life.
	 */
	char		 redis_run_id[48];	/* "" while disconnected */
	char		 redis_last_run_id[48];	/* kept when disconnected */
	char		 gcra_sha1[41];		/* lib/gate.c's script, for EVALSHA */
	/* Sent by Fin_redis_send_later: replies still to read, bytes to write. */
	size_t		 redis_unread;
	bool		 redis_unflushed;
	/* Revocations Redis did not take yet (see Fin_session_unmirror). */
#define FIN_PENDING_UNMIRROR_MAX 64
	char		 pending_unmirror[FIN_PENDING_UNMIRROR_MAX][37];
	size_t		 npending_unmirror;
	/*
	 * What PostgreSQL announced (Fin_db_announcements): revocations, which
	 * outrank an "alive" entry in Redis (Fin_session_mirror_trusted), and
	 * users whose cached pages Redis may still hold after a write
	 * (Fin_cache_trusted).
	 */
	int64_t		 pg_listening_ms;	/* since (monotonic ms); 0: not */
	struct fin_heard revoked;
	struct fin_heard stale_caches;
	/* Feature flags, reloaded from PostgreSQL at most once a second. */
	struct fin_flag_state flags[FIN_FLAGS_MAX];
	size_t		 nflags;
	int64_t		 flags_loaded_ms;	/* 0: never */
	int		 flags_warned_count;	/* flags_truncated said for it */
};

/*
 * Runs stmt with the given text parameters (NULL for SQL NULL).  On success
 * *out is a PGresult the caller must PQclear (or hand to the arena); on error
 * *out is NULL.  A connection lost outside a SQL transaction is reopened and
 * the statement retried once, so a PostgreSQL restart costs no request.
 * SQLSTATEs are mapped here once: class 08 and shutdown states become
 * FIN_E_SERVICE_UNAVAILABLE; a unique violation (23505) comes back as
 * FIN_E_INTERNAL_ERROR with Fin_db_unique_violation() true, so that each
 * caller maps it to its own conflict code; the rest is FIN_E_INTERNAL_ERROR
 * with the detail logged.
 */
enum fin_err	 Fin_db_exec(struct fin_ctx *, const struct fin_stmt *,
		    const char *const *params, PGresult **out) FIN_WUR;
/*
 * Like Fin_db_exec, for a write that commits on its own: never sent again
 * after the connection died under it, since it may have committed.
 */
enum fin_err	 Fin_db_exec_once(struct fin_ctx *, const struct fin_stmt *,
		    const char *const *params, PGresult **out) FIN_WUR;
/* Like Fin_db_exec, but hands the result to the arena (PQclear at reset). */
enum fin_err	 Fin_db_query(struct fin_ctx *, struct fin_arena *,
		    const struct fin_stmt *, const char *const *params,
		    PGresult **out) FIN_WUR;
/* SQLSTATE of the last failed statement ("" if none). */
const char	*Fin_db_last_sqlstate(const struct fin_ctx *);
bool		 Fin_db_unique_violation(const struct fin_ctx *);
/* Runs plain SQL with no parameters (migrations only). */
enum fin_err	 Fin_db_exec_script(struct fin_ctx *, const char *sql) FIN_WUR;
/*
 * Reads what PostgreSQL announced since the last look, one non-blocking
 * read of the socket.  False when this connection is not listening: then
 * nothing may be taken as unannounced.
 */
bool		 Fin_db_announcements(struct fin_ctx *);
void		 Fin_heard_add(struct fin_heard *, const char *id, int64_t now);
/* Whether id, or maybe any id (after an overflow), was heard lately. */
bool		 Fin_heard_lately(const struct fin_heard *, const char *id,
		    int64_t now);
enum fin_err	 Fin_db_connect(struct fin_ctx *) FIN_WUR;
/*
 * How long a worker waits for any answer from PostgreSQL: its
 * statement_timeout and FIN_DB_ANSWER_SLACK_MS more, or without end when
 * there is no statement_timeout.
 */
#define FIN_DB_ANSWER_SLACK_MS 2000
/*
 * After PostgreSQL let an answer or a connection time out, requests get
 * 503 at once for this long instead of each waiting out a connect_timeout
 * (and one request does not wait twice).
 */
#define FIN_DB_QUIET_MS 1000
int64_t		 Fin_db_answer_ms(const struct fin_config *);

/* ------------------------------------------------------------------ */
/* Redis                                                               */
/* ------------------------------------------------------------------ */

/*
 * Sends one command and reads its reply.  *out must be freed with
 * freeReplyObject (or handed to the arena).  FIN_E_SERVICE_UNAVAILABLE when
 * Redis cannot be reached; the connection is then dropped and retried no
 * sooner than FIN_REDIS_RETRY_MS later, so a dead Redis costs nothing.
 */
#define FIN_REDIS_RETRY_MS	250
enum fin_err	 Fin_redis_command(struct fin_ctx *, redisReply **out,
		    int argc, const char **argv, const size_t *argvlen) FIN_WUR;
/*
 * Pipelines n commands in one round trip.  replies[i] receives each reply
 * (NULL where none came); free each with freeReplyObject.
 */
enum fin_err	 Fin_redis_pipeline(struct fin_ctx *, size_t n,
		    const int *argc, const char **const *argv,
		    const size_t *const *argvlen, redisReply **replies) FIN_WUR;
bool		 Fin_redis_available(struct fin_ctx *);
/*
 * Queues a command whose reply nobody waits for (a cache fill): it leaves
 * with the next pipeline, or with fin_redis_flush() when the worker is
 * about to go idle, and its reply is read and dropped then.
 */
void		 Fin_redis_send_later(struct fin_ctx *, int argc,
		    const char **argv, const size_t *argvlen);

/*
 * The response cache's look-up as two GETs (the generation, the page), so
 * that lib/gate.c can send them in the same round trip as the rate limits
 * and the session check.
 */
#define FIN_CACHE_KEY_MAX	256
struct fin_cache_lookup {
	char		 genkey[FIN_CACHE_KEY_MAX];
	char		 pagekey[FIN_CACHE_KEY_MAX];
	const char	*gen[2], *page[2];
};
void		 Fin_cache_lookup_cmd(struct fin_ctx *, const char *user_id,
		    const char *kind, const char *query,
		    struct fin_cache_lookup *, struct fin_cache_entry *out);
/*
 * FIN_OK on a hit, FIN_E_NOT_FOUND on a miss (out->usable either way);
 * page is NULL when only the generation was asked for (always a miss).
 */
enum fin_err	 Fin_cache_lookup_reply(const redisReply *gen,
		    const redisReply *page, struct fin_arena *,
		    struct fin_cache_entry *out) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Lockout                                                             */
/* ------------------------------------------------------------------ */

/* One check of a user's password, as the lockout counted it. */
struct fin_pwcheck {
	char	 hash[FIN_PASSWORD_HASH_MAX];	/* the stored hash checked */
	int64_t	 retry_after;	/* FIN_E_ACCOUNT_LOCKED: seconds left */
	bool	 failed;	/* a wrong password, counted */
	bool	 locked_now;	/* ... and it locked the account */
	bool	 gone;		/* the account is deleted */
	bool	 rehash;	/* right, but hashed with other limits */
};
/* One counted check of a password (its answers: lib/lockout.c); wipe *c. */
enum fin_err	 Fin_pwcheck(struct fin_ctx *, const char *user_id,
		    const char *password, struct fin_pwcheck *c) FIN_WUR;
/* What a check that did not pass answers: audited, counted, Retry-After. */
enum fin_err	 Fin_pwcheck_refused(struct fin_ctx *,
		    const struct fin_client *, const char *user_id,
		    const char *via, enum fin_err e, const struct fin_pwcheck *c,
		    int64_t *retry_after) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

int64_t		 Fin_wall_ms(void);		/* CLOCK_REALTIME */

/* ------------------------------------------------------------------ */
/* MAC (lib/util.c)                                                    */
/* ------------------------------------------------------------------ */

#define FIN_HMAC_SHA256_LEN	32
bool		 Fin_hmac_sha256(const void *key, size_t keylen,
		    const void *data, size_t len,
		    unsigned char out[FIN_HMAC_SHA256_LEN]);

/* ------------------------------------------------------------------ */
/* Audit and cursors                                                   */
/* ------------------------------------------------------------------ */

/* The client's user agent as the audit trail stores it (cut, UTF-8). */
#define FIN_AUDIT_FIELD_MAX	512
void		 Fin_audit_user_agent(const struct fin_client *,
		    char ua[FIN_AUDIT_FIELD_MAX + 1]);
/*
 * Appends one audit event.  Call it inside the SQL transaction of the
 * change it records, so that both happen or neither.  user_id may be NULL
 * (a failed login for an unknown email); details is not consumed.
 */
enum fin_err	 Fin_audit(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const char *action,
		    struct json_object *details) FIN_WUR;

/*
 * Opaque pagination cursors: base64url(payload) "." base64url(MAC), so a
 * client can hand them back but not forge or edit them.  payload is short
 * text (at most FIN_CURSOR_PAYLOAD_MAX bytes).
 */
#define FIN_CURSOR_PAYLOAD_MAX	256
#define FIN_CURSOR_MAX		512
bool		 Fin_cursor_encode(const struct fin_config *, const char *payload,
		    char out[FIN_CURSOR_MAX]);
bool		 Fin_cursor_decode(const struct fin_config *, const char *cursor,
		    char payload[FIN_CURSOR_PAYLOAD_MAX + 1]);

/* ------------------------------------------------------------------ */
/* Sessions (lib/sessions.c), used by lib/auth.c                       */
/* ------------------------------------------------------------------ */

/* Inserts a session and its first refresh token; inside a transaction. */
enum fin_err	 Fin_session_start(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, char session_id[37],
		    struct fin_tokens *out) FIN_WUR;
/* Issues a new refresh token for a session; inside a transaction. */
enum fin_err	 Fin_refresh_issue(struct fin_ctx *, const char *session_id,
		    char token[FIN_REFRESH_TOKEN_MAX]) FIN_WUR;
enum fin_err	 Fin_access_token(struct fin_ctx *, const char *user_id,
		    const char *session_id, struct fin_tokens *out) FIN_WUR;
/* Keyed hash of a refresh token as PostgreSQL bytea hex text (\x...). */
bool		 Fin_refresh_hash(const struct fin_config *, const char *token,
		    char out[80]);
/* Drops the Redis mirror entries of sessions revoked in PostgreSQL. */
void		 Fin_session_unmirror(struct fin_ctx *, const char *session_id);
/* The mirror, for the per-request gate (lib/gate.c). */
#define FIN_MIRROR_KEY_MAX	128
void		 Fin_session_mirror_key(const struct fin_ctx *, const char *kind,
		    const char *sid, char out[FIN_MIRROR_KEY_MAX]);
void		 Fin_session_mirror_set(struct fin_ctx *, const struct fin_principal *);
/*
 * Whether an "alive" entry of the mirror may be believed: not when
 * PostgreSQL announced the session's revocation, nor while this worker
 * may have missed an announcement.  Read Fin_db_announcements() first.
 */
bool		 Fin_session_mirror_trusted(const struct fin_ctx *,
		    const char *session_id);
/*
 * Whether this worker may read user_id's pages in the Redis it talks to:
 * none were announced stale there (or in a Redis of unknown run_id).
 */
bool		 Fin_cache_trusted(const struct fin_ctx *, const char *user_id);
enum fin_err	 Fin_session_alive_pg(struct fin_ctx *, const struct fin_principal *,
		    bool *alive) FIN_WUR;
void		 Fin_session_touch(struct fin_ctx *, const char *session_id);
/* Writes the tombstones a stalled Redis did not take. */
void		 Fin_session_unmirror_pending(struct fin_ctx *);
/* Revokes every live session of a user except keep (may be NULL). */
enum fin_err	 Fin_sessions_revoke_all(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const char *keep, const char *reason) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Transactions                                                        */
/* ------------------------------------------------------------------ */

/* One row of a FIN_TXN_COLS select as the API's transaction object. */
struct json_object *Fin_txn_row_json(PGresult *, int row);
/*
 * Inserts and audits in one statement: atomic on its own, or part of the
 * caller's SQL transaction when there is one.
 */
enum fin_err	 Fin_txn_insert(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const struct fin_txn_input *,
		    struct json_object **out) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Exports (lib/export.c, export_csv.c, export_pdf.c, pdf_text.c,      */
/* export_user.c)                                                      */
/* ------------------------------------------------------------------ */

#define FIN_EXPORT_CHUNK	(64 * 1024)	/* bytes handed to the callback at once */
#define FIN_EXPORT_BATCH	1000		/* rows per keyset statement */

/*
 * The bytes of an export on their way out: appended whole, handed to the
 * caller's write callback FIN_EXPORT_CHUNK bytes at a time.  After the
 * callback refuses once (the client went away) every call is false.
 * The buffer is malloc'd by Fin_chunk_init and freed by Fin_chunk_free.
 */
struct fin_chunk {
	fin_write_fn	*write;
	void		*arg;
	char		*buf;
	size_t		 len;
	uint64_t	 sent;		/* bytes the callback took */
	bool		 failed;
};

bool		 Fin_chunk_init(struct fin_chunk *, fin_write_fn *, void *arg);
void		 Fin_chunk_free(struct fin_chunk *);
bool		 Fin_chunk_put(struct fin_chunk *, const char *, size_t);
bool		 Fin_chunk_puts(struct fin_chunk *, const char *);
bool		 Fin_chunk_flush(struct fin_chunk *);

/* Columns of the rows Fin_export_txns hands out (0-8 as Fin_txn_row_json). */
enum fin_export_col {
	FIN_XC_ID,
	FIN_XC_AMOUNT,
	FIN_XC_CURRENCY,
	FIN_XC_DESCRIPTION,
	FIN_XC_CATEGORY,
	FIN_XC_OCCURRED_ON,
	FIN_XC_CREATED_AT,
	FIN_XC_UPDATED_AT,
	FIN_XC_DELETED_AT
};

typedef enum fin_err fin_export_row_fn(void *arg, PGresult *, int row);

/* BEGIN; REPEATABLE READ, READ ONLY.  End it with fin_db_commit/rollback. */
enum fin_err	 Fin_export_snapshot(struct fin_ctx *) FIN_WUR;
enum fin_err	 Fin_export_txns(struct fin_ctx *, const char *user_id,
		    const char *from, const char *to, bool with_deleted,
		    fin_export_row_fn *, void *arg, int64_t *rows) FIN_WUR;
bool		 Fin_amount_decimal(int64_t minor, int units, char *out,
		    size_t outsz);
int		 Fin_export_minor_units(const char *currency);
/* extra (may be NULL) is consumed. */
enum fin_err	 Fin_export_audit(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const char *format, const char *from,
		    const char *to, int64_t rows, bool complete,
		    struct json_object *extra) FIN_WUR;
void		 Fin_export_audit_partial(struct fin_ctx *,
		    const struct fin_client *, const char *user_id,
		    const char *format, const char *from, const char *to,
		    int64_t rows);

/* One CSV field (RFC 4180), formula-neutralised when text (export_csv.c). */
#define FIN_CSV_FIELD_SIZE(n)	(2 * (n) + 4)	/* always enough for n bytes in */
bool		 Fin_csv_field(const char *in, bool text, char *out,
		    size_t outsz);

/*
 * Which characters of the Basic Multilingual Plane a TrueType font has
 * glyphs for, read from its (3,1) format 4 cmap: the table libharu itself
 * maps text with (pdf_text.c).
 */
#define FIN_GLYPHS_BMP	65536
struct fin_glyphs {
	uint8_t		 bits[FIN_GLYPHS_BMP / 8];
};

bool		 Fin_glyphs_load(const char *ttf_path, struct fin_glyphs *out,
		    char *why, size_t whysz);
bool		 Fin_glyphs_has(const struct fin_glyphs *, uint32_t cp);
void		 Fin_glyphs_add(struct fin_glyphs *, uint32_t cp);
/* Text the font can draw: see pdf_text.c.  out needs strlen(in) + 1. */
bool		 Fin_pdf_text_safe(const struct fin_glyphs *, const char *in,
		    char *out, size_t outsz);
/* Width of a character in points, for Fin_pdf_fit. */
typedef float	 fin_glyph_width_fn(void *arg, uint32_t cp);
size_t		 Fin_pdf_fit(const char *s, float maxw, float ellipsis_w,
		    fin_glyph_width_fn *, void *arg, bool *cut);
float		 Fin_pdf_width(const char *s, fin_glyph_width_fn *, void *arg);

#endif /* FIN_INTERNAL_H */
