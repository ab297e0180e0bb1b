/*
 * libfinance: the services behind the personal-finance API.
 *
 * Everything here is named fin_*; nothing else is exported.  The library
 * knows nothing of FastCGI or HTTP: callers hand it typed values and get
 * back an enum fin_err plus out-parameters.  The HTTP status that goes with
 * an error lives in lib/errors.def so that the code and its status never
 * drift apart.
 *
 * Lifetimes (see STYLE.md): the config is process-wide and read-only after
 * fin_config_load(); a struct fin_ctx is one worker's connections; a
 * struct fin_arena holds one request's memory and is reset after it.
 */
#ifndef FINANCE_H
#define FINANCE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#define FIN_WUR	__attribute__((warn_unused_result))

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

enum fin_err {
	FIN_OK = 0,
#define FIN_ERR(name, status, msg) FIN_E_##name,
#include "errors.def"
#undef FIN_ERR
	FIN_E__MAX
};

int		 fin_err_status(enum fin_err);
const char	*fin_err_code(enum fin_err);
const char	*fin_err_message(enum fin_err);

/* ------------------------------------------------------------------ */
/* Request memory                                                      */
/* ------------------------------------------------------------------ */

struct fin_arena;

/* An arena refuses to grow past max_bytes; allocations then return NULL. */
struct fin_arena *fin_arena_new(size_t max_bytes);
void		 fin_arena_free(struct fin_arena *);
void		 fin_arena_reset(struct fin_arena *);
void		*fin_arena_alloc(struct fin_arena *, size_t);
void		*fin_arena_zalloc(struct fin_arena *, size_t);
char		*fin_arena_strdup(struct fin_arena *, const char *);
char		*fin_arena_strndup(struct fin_arena *, const char *, size_t);
char		*fin_arena_printf(struct fin_arena *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
/* Runs fn(p) at the next reset, newest first.  Fails (and runs nothing) on OOM. */
enum fin_err	 fin_arena_defer(struct fin_arena *, void (*fn)(void *), void *p) FIN_WUR;
/* json_object_put() at reset; returns obj for chaining (NULL on OOM, obj put). */
struct json_object *fin_arena_json(struct fin_arena *, struct json_object *obj);
size_t		 fin_arena_used(const struct fin_arena *);

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

enum fin_env {
	FIN_ENV_DEVELOPMENT,
	FIN_ENV_TEST,
	FIN_ENV_PRODUCTION,
	FIN_ENV__MAX
};

enum fin_log_level {
	FIN_LOG_DEBUG,
	FIN_LOG_INFO,
	FIN_LOG_WARN,
	FIN_LOG_ERROR,
	FIN_LOG__MAX
};

#define FIN_SECRET_MIN	32	/* bytes; shorter secrets refuse to start outside development */

struct fin_config {
	enum fin_env	 env;
	enum fin_log_level log_level;
	char		*database_url;
	char		*redis_url;
	char		*jwt_secret;
	char		*refresh_token_secret;
	char		*jwt_issuer;
	char		*jwt_audience;
	int64_t		 access_token_ttl;	/* seconds */
	int64_t		 refresh_token_ttl;	/* seconds */
	int64_t		 lockout_threshold;
	int64_t		 lockout_seconds;
	int64_t		 pwhash_opslimit;
	int64_t		 pwhash_memlimit;	/* bytes */
	int64_t		 db_connect_timeout;	/* seconds */
	int64_t		 db_statement_timeout;	/* milliseconds */
	int64_t		 redis_timeout_ms;
	int64_t		 shutdown_timeout;	/* seconds */
	char		*trusted_proxies;
	char		*cors_origins;
	int64_t		 rl_ip_per_min;
	int64_t		 rl_user_per_min;
	int64_t		 rl_signup_per_hour;
	int64_t		 rl_login_ip_per_15min;
	int64_t		 rl_login_email_per_15min;
	int64_t		 rl_ip_window;		/* seconds */
	int64_t		 rl_user_window;
	int64_t		 rl_signup_window;
	int64_t		 rl_login_window;
	char		*sentry_dsn;
	char		*release;
	char		*environment_name;
	char		*pdf_font;		/* TrueType file of PDF statements */
	char		*pdf_font_bold;
};

/*
 * Reads the environment, then an optional env file (path from
 * FINANCE_ENV_FILE, else ./.env if it exists); the process environment wins.
 * need_secrets: refuse missing or short secrets outside development (the
 * server); tools that never sign anything (migrate) pass false.
 * On failure writes a one-line reason into why (never a secret's value) and
 * returns NULL.  Free with fin_config_free().
 */
struct fin_config *fin_config_load(bool need_secrets, char *why, size_t whysz);
/* The env file fin_config_load() reads, or NULL when there is none. */
const char	*fin_config_env_path(void);
/* fin_config_load() with the env file at path (NULL: none), called shown. */
struct fin_config *fin_config_load_from(const char *path, const char *shown,
		    bool need_secrets, char *why, size_t whysz);
void		 fin_config_free(struct fin_config *);
/* Writes the configuration table as Markdown rows (name, default, meaning). */
void		 fin_config_describe(FILE *);

/* ------------------------------------------------------------------ */
/* Logging: one JSON object per line on stderr                         */
/* ------------------------------------------------------------------ */

void		 fin_log_init(enum fin_log_level, const char *component);
bool		 fin_log_enabled(enum fin_log_level);
/* event: a short snake_case name; msg: lowercase, what was tried and why it failed. */
void		 fin_log(enum fin_log_level, const char *event, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
/* Emits fields (an object, not consumed) with ts, level and event added. */
void		 fin_log_json(enum fin_log_level, const char *event, struct json_object *fields);

/* ------------------------------------------------------------------ */
/* A worker's connections                                              */
/* ------------------------------------------------------------------ */

struct fin_ctx;

/* Connects lazily: a dependency that is down does not stop creation. */
struct fin_ctx	*fin_ctx_new(const struct fin_config *);
void		 fin_ctx_free(struct fin_ctx *);
const struct fin_config *fin_ctx_config(const struct fin_ctx *);

/* SQL transactions (money transactions are "txn"; these are never). */
enum fin_err	 fin_db_begin(struct fin_ctx *) FIN_WUR;
enum fin_err	 fin_db_commit(struct fin_ctx *) FIN_WUR;
void		 fin_db_rollback(struct fin_ctx *);
/* Round trips to each dependency; FIN_E_SERVICE_UNAVAILABLE when down. */
enum fin_err	 fin_db_ping(struct fin_ctx *) FIN_WUR;
enum fin_err	 fin_redis_ping(struct fin_ctx *) FIN_WUR;
/*
 * Commands sent without waiting (cache fills) ride along with the next
 * request's round trip; a worker about to go idle writes them out here.
 */
bool		 fin_redis_unflushed(const struct fin_ctx *);
void		 fin_redis_flush(struct fin_ctx *);

/* ------------------------------------------------------------------ */
/* JSON and validation helpers                                         */
/* ------------------------------------------------------------------ */

#define FIN_JSON_MAX_DEPTH	16

/*
 * Parses a request body strictly (RFC 8259, valid UTF-8, no trailing bytes,
 * depth at most FIN_JSON_MAX_DEPTH, no duplicate keys).  The object is owned
 * by the arena.  FIN_E_INVALID_JSON or FIN_E_INVALID_BODY (not an object).
 */
enum fin_err	 fin_json_parse_object(struct fin_arena *, const char *body,
		    size_t len, struct json_object **out) FIN_WUR;

/* True when s is 1-64 characters of [A-Za-z0-9._-]. */
bool		 fin_valid_request_id(const char *s);
/* Writes a fresh UUID v4 (36 chars + NUL) into out. */
void		 fin_uuid_v4(char out[37]);
/* True for a canonical (lowercase or uppercase hex, dashed) UUID. */
bool		 fin_valid_uuid(const char *s);
/* Milliseconds on CLOCK_MONOTONIC, for durations and timeouts. */
int64_t		 fin_now_ms(void);
int64_t		 fin_now_us(void);
/* Formats t as RFC 3339 UTC with Z, seconds precision. */
void		 fin_time_rfc3339(time_t t, char out[32]);

/*
 * Parses a whole decimal integer in [min, max]: optional '-', digits only,
 * no spaces, no '+', no leading zeros.  The bounded replacement for
 * atoi/strtol, which the tree never uses.
 */
bool		 fin_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * Applies the pending migrations of dir in order (see lib/migrate.c),
 * reporting one line per file to out.  dry_run lists them only.
 */
enum fin_err	 fin_migrate(struct fin_ctx *, const char *dir, bool dry_run,
		    FILE *out) FIN_WUR;

/*
 * Request validation (lib/validate.c).  A spec is an array of fields ended
 * by a row with name NULL; out[] has one value per row, in the same order.
 * Unknown fields are refused.  On FIN_E_VALIDATION_ERROR *fields is an
 * arena-owned object {"<field>": "<what is wrong>"} for the error body.
 */
enum fin_field_type {
	FIN_F_STRING,		/* any string, length min..max in characters */
	FIN_F_TEXT,		/* trimmed, no control characters */
	FIN_F_EMAIL,		/* trimmed, lower-cased, address-shaped, <= 254 */
	FIN_F_EMAIL_LOGIN,	/* the same, but only loosely shaped (see validate.c) */
	FIN_F_INT64,		/* a JSON integer within +-(2^53 - 1) and min..max */
	FIN_F_DATE,		/* YYYY-MM-DD, a real calendar date */
	FIN_F_UUID,
	FIN_F_BOOL,
	FIN_F_CURRENCY		/* an active ISO 4217 code, upper case */
};

struct fin_field {
	const char	*name;
	enum fin_field_type type;
	bool		 required;
	int64_t		 min, max;
	bool		 nullable;	/* JSON null accepted (is_null set) */
};

struct fin_value {
	bool		 present;
	bool		 is_null;
	const char	*s;		/* strings: arena copy, NUL-terminated */
	size_t		 len;
	int64_t		 i;
	bool		 b;
};

enum fin_err	 fin_validate(struct fin_arena *, const struct fin_field *spec,
		    struct json_object *body, struct fin_value *out,
		    struct json_object **fields) FIN_WUR;
bool		 fin_utf8_valid(const char *s, size_t n);
size_t		 fin_utf8_length(const char *s, size_t n);
bool		 fin_valid_date(const char *s);

/* -- auth: jwt, password, sessions (declarations added by those modules) -- */

/*
 * base64url without padding (RFC 4648 §5).  Encoding writes the text and a
 * NUL and returns its length; it returns 0 (and writes "" if it can) when
 * outsz is smaller than FIN_BASE64URL_SIZE(len), and for empty input.
 * Decoding is strict: '=', white space, any byte outside the alphabet, a
 * length of 1 mod 4 and non-zero trailing bits are all refused, as is
 * output past outsz; on false, *outlen is 0 and out holds garbage.
 */
#define FIN_BASE64URL_SIZE(n)	((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0) + 1)
size_t		 fin_base64url_encode(const unsigned char *in, size_t len,
		    char *out, size_t outsz);
bool		 fin_base64url_decode(const char *in, size_t len,
		    unsigned char *out, size_t outsz, size_t *outlen);

/*
 * Access tokens: HS256 JWTs signed with cfg->jwt_secret (its bytes as
 * they are), carrying iss and aud from the config.  The header is always
 * {"alg":"HS256","typ":"JWT"} and no other alg is accepted.
 *
 * fin_jwt_sign writes the token and a NUL into out (FIN_JWT_MAX + 1 bytes
 * always suffice); FIN_E_INTERNAL_ERROR if sub, sid or jti is not a UUID,
 * a time is out of range or out is too small.
 * fin_jwt_verify checks, at time now (Unix seconds): length, shape,
 * signature (in constant time, before anything else is read), alg, exp,
 * iat and nbf with 30 s of leeway, iss, aud (a string or an array holding
 * ours) and the UUIDs.  Any bad token is FIN_E_UNAUTHORIZED, with out
 * zeroed; FIN_E_INTERNAL_ERROR only for a config without a key.
 */
#define FIN_JWT_MAX	4096	/* longest token accepted, characters */

struct fin_jwt_claims {
	char		 sub[37];	/* user id */
	char		 sid[37];	/* session id */
	char		 jti[37];	/* token id */
	int64_t		 iat, exp, nbf;	/* Unix seconds; nbf 0 = absent */
};

enum fin_err	 fin_jwt_sign(const struct fin_config *,
		    const struct fin_jwt_claims *, char *out,
		    size_t outsz) FIN_WUR;
enum fin_err	 fin_jwt_verify(const struct fin_config *, const char *token,
		    int64_t now, struct fin_jwt_claims *out) FIN_WUR;

/*
 * The HS256 layer beneath, over raw key bytes and with no claim checks
 * (the RFC 7515 test vector uses both).  fin_jwt_hs256_sign writes the
 * base64url HMAC-SHA256 of input into sig (44 bytes suffice).
 * fin_jwt_hs256_check verifies a compact token's signature and header and
 * points *payload_b64 at its payload segment, inside token, payload_len
 * bytes long and not NUL-terminated; FIN_E_UNAUTHORIZED otherwise.
 */
enum fin_err	 fin_jwt_hs256_sign(const unsigned char *key, size_t keylen,
		    const char *input, size_t inlen, char *sig,
		    size_t sigsz) FIN_WUR;
enum fin_err	 fin_jwt_hs256_check(const unsigned char *key, size_t keylen,
		    const char *token, const char **payload_b64,
		    size_t *payload_len) FIN_WUR;

/*
 * Passwords: argon2id (libsodium) with cfg->pwhash_opslimit and
 * cfg->pwhash_memlimit.
 *
 * fin_password_hash writes a NUL-terminated "$argon2id$..." string.
 * fin_password_verify sets *ok, and *needs_rehash when the password was
 * right but the hash was made with other limits (store a new one);
 * FIN_E_INTERNAL_ERROR for a stored hash that is not argon2id or no memory.
 * fin_password_verify_dummy costs what a verification costs and answers
 * nothing: call it when there is no user, so that an unknown email and a
 * wrong password take the same time.
 * fin_password_check_policy: FIN_E_VALIDATION_ERROR unless password is
 * valid UTF-8 of FIN_PASSWORD_MIN to FIN_PASSWORD_MAX code points;
 * FIN_E_WEAK_PASSWORD when it is on the common-password list, in any ASCII
 * case.  *why is a static phrase for the "fields" of the error ("must be 8
 * to 128 characters").  It sees a C string: the caller refuses a JSON
 * string with an embedded NUL ("\u0000") before, or the rest is not seen.
 */
#define FIN_PASSWORD_HASH_MAX	128	/* >= crypto_pwhash_STRBYTES, with NUL */
#define FIN_PASSWORD_MIN	8	/* characters (code points) */
#define FIN_PASSWORD_MAX	128

enum fin_err	 fin_password_hash(const struct fin_config *,
		    const char *password,
		    char out[FIN_PASSWORD_HASH_MAX]) FIN_WUR;
enum fin_err	 fin_password_verify(const struct fin_config *,
		    const char *hash, const char *password, bool *ok,
		    bool *needs_rehash) FIN_WUR;
void		 fin_password_verify_dummy(const struct fin_config *,
		    const char *password);
enum fin_err	 fin_password_check_policy(const char *password,
		    const char **why) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Users, auth and sessions (lib/auth.c, lib/sessions.c)               */
/* ------------------------------------------------------------------ */

/* Who is asking, for the audit trail and the session list. */
struct fin_client {
	const char	*ip;
	const char	*user_agent;
	const char	*request_id;
};

#define FIN_EMAIL_MAX		254
#define FIN_NAME_MAX		100			/* characters */
#define FIN_ACCESS_TOKEN_MAX	1024
#define FIN_REFRESH_TOKEN_MAX	64

struct fin_user {
	char		 id[37];
	char		 email[FIN_EMAIL_MAX + 1];
	char		 name[FIN_NAME_MAX * 4 + 1];	/* UTF-8 */
	char		 role[8];			/* "user" or "admin" */
	char		 created_at[32];
};

struct fin_tokens {
	char		 access_token[FIN_ACCESS_TOKEN_MAX];
	char		 refresh_token[FIN_REFRESH_TOKEN_MAX];
	int64_t		 expires_in;			/* seconds */
};

/* The caller of an authenticated request. */
struct fin_principal {
	char		 user_id[37];
	char		 session_id[37];
};

/* {id, email, name, role, created_at}: never a hash or a token. */
struct json_object *fin_user_json(const struct fin_user *);

/* FIN_E_EMAIL_TAKEN, FIN_E_WEAK_PASSWORD, FIN_E_VALIDATION_ERROR (*why). */
enum fin_err	 fin_auth_signup(struct fin_ctx *, const struct fin_client *,
		    const char *email, const char *name, const char *password,
		    struct fin_user *out, const char **why) FIN_WUR;
/*
 * FIN_E_INVALID_CREDENTIALS for a wrong password, an unknown or a deleted
 * account (in the same time); FIN_E_ACCOUNT_LOCKED with *retry_after in
 * seconds while locked.
 */
enum fin_err	 fin_auth_login(struct fin_ctx *, const struct fin_client *,
		    const char *email, const char *password, struct fin_user *user,
		    struct fin_tokens *tokens, int64_t *retry_after) FIN_WUR;
/* Rotates a refresh token; FIN_E_REFRESH_TOKEN_REUSED revokes the session. */
enum fin_err	 fin_auth_refresh(struct fin_ctx *, const struct fin_client *,
		    const char *refresh_token, struct fin_user *user,
		    struct fin_tokens *tokens) FIN_WUR;
/*
 * Checks an access token and that its session is alive (one Redis round
 * trip; PostgreSQL when Redis is down).  FIN_E_UNAUTHORIZED otherwise.
 */
enum fin_err	 fin_auth_authenticate(struct fin_ctx *, const char *access_token,
		    struct fin_principal *out) FIN_WUR;
enum fin_err	 fin_auth_me(struct fin_ctx *, const struct fin_principal *,
		    struct fin_user *out) FIN_WUR;
enum fin_err	 fin_auth_logout(struct fin_ctx *, const struct fin_client *,
		    const struct fin_principal *) FIN_WUR;
/*
 * Both check the password as a login does, and count it toward the same
 * lockout: FIN_E_INVALID_CREDENTIALS when wrong, FIN_E_ACCOUNT_LOCKED with
 * *retry_after in seconds while locked.
 */
enum fin_err	 fin_auth_change_password(struct fin_ctx *, const struct fin_client *,
		    const struct fin_principal *, const char *current,
		    const char *new_password, const char **why,
		    int64_t *retry_after) FIN_WUR;
enum fin_err	 fin_auth_delete_account(struct fin_ctx *, const struct fin_client *,
		    const struct fin_principal *, const char *password,
		    int64_t *retry_after) FIN_WUR;

/*
 * The per-request gate (lib/gate.c): the rate limits a route asks for and,
 * when a token is given, the session check, in one Redis round trip.
 */
enum fin_limit_kind {
	FIN_LIMIT_IP,		/* every route, per client IP */
	FIN_LIMIT_USER,		/* authenticated routes, per user */
	FIN_LIMIT_SIGNUP_IP,	/* signup, per client IP */
	FIN_LIMIT_LOGIN_IP,	/* login, per client IP */
	FIN_LIMIT_LOGIN_EMAIL,	/* login, per email address */
	FIN_LIMIT__MAX
};

struct fin_limit_result {
	bool		 checked;	/* false: not asked for, or Redis down */
	bool		 allowed;
	int64_t		 limit, remaining;
	int64_t		 reset;		/* seconds until the limit is full again */
	int64_t		 retry_after;	/* seconds, when refused */
};

struct fin_cache_entry {
	char		 run_id[48];		/* of the Redis the generation came from */
	char		 generation[24];
	char		 digest[65];
	bool		 usable;		/* Redis answered: a put may follow */
	const char	*body;			/* on a hit, arena-owned */
	char		 tag[48];		/* on a hit, the tag stored with it */
};

struct fin_gate {
	const char	*ip;
	const char	*email;		/* FIN_LIMIT_LOGIN_EMAIL's subject */
	const char	*token;		/* NULL: the route is public */
	unsigned	 limits;	/* 1u << FIN_LIMIT_* */
	/*
	 * Set both to look the response up in the cache (fin_cache_get) in
	 * the same round trip, for the token's user; the page lands in arena.
	 */
	const char	*cache_kind, *cache_query;
	struct fin_arena *arena;
	/*
	 * The client asked for a fresh page (FIN_CACHE_NO_READ): only the
	 * generation is read, so that the page made can still be stored.
	 */
	bool		 cache_generation_only;
};

struct fin_gate_result {
	enum fin_err	 auth;		/* FIN_OK, FIN_E_UNAUTHORIZED or _SERVICE_UNAVAILABLE */
	struct fin_principal principal;
	struct fin_limit_result limits[FIN_LIMIT__MAX];
	int		 denied;	/* the FIN_LIMIT_* that refused, or -1 */
	bool		 limits_failed_open;
	struct fin_cache_entry cache;	/* .usable: it was looked up */
};

enum fin_err	 fin_gate_check(struct fin_ctx *, const struct fin_gate *,
		    struct fin_gate_result *) FIN_WUR;

/* {data: [{id, ip, user_agent, created_at, last_used_at, current}]} */
enum fin_err	 fin_sessions_list(struct fin_ctx *, const struct fin_principal *,
		    struct json_object **out) FIN_WUR;
/* FIN_E_NOT_FOUND unless it is a live session of the caller. */
enum fin_err	 fin_session_revoke(struct fin_ctx *, const struct fin_client *,
		    const struct fin_principal *, const char *session_id) FIN_WUR;
enum fin_err	 fin_sessions_revoke_others(struct fin_ctx *, const struct fin_client *,
		    const struct fin_principal *) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Audit (lib/audit.c)                                                 */
/* ------------------------------------------------------------------ */

struct fin_audit_query {
	bool		 all_users;	/* admin: user_id is only a filter */
	const char	*user_id;	/* the user, or with all_users NULL: everyone */
	const char	*action;	/* NULL: every action */
	const char	*cursor;	/* NULL: first page */
	int64_t		 limit;		/* 1..200 */
};

/*
 * {data: [{id, action, ip, user_agent, request_id, details, created_at}],
 *  next_cursor}, newest first.  FIN_E_INVALID_CURSOR for a forged cursor.
 */
enum fin_err	 fin_audit_list(struct fin_ctx *, const struct fin_audit_query *,
		    struct json_object **out) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Transactions (lib/transactions.c, summary.c, idempotency.c)         */
/* ------------------------------------------------------------------ */

/* ISO 4217 minor units of an active currency code, or -1 (lib/currency.c). */
int		 fin_currency_minor_units(const char *code);

/* Writable fields; NULL (or has_amount false) means "not given". */
struct fin_txn_input {
	bool		 has_amount;
	int64_t		 amount;		/* minor units */
	const char	*currency;
	const char	*description;
	const char	*category;
	const char	*occurred_on;		/* YYYY-MM-DD */
};

enum fin_deleted_mode {
	FIN_DELETED_EXCLUDE,
	FIN_DELETED_INCLUDE,
	FIN_DELETED_ONLY
};

/* The page size of a list whose request names none (API.md). */
#define FIN_PAGE_DEFAULT	50

struct fin_txn_query {
	const char	*user_id;
	const char	*from, *to;		/* dates, inclusive; NULL: open */
	const char	*category;		/* exact match */
	const char	*q;			/* literal text in the description */
	const char	*cursor;
	enum fin_deleted_mode deleted;
	int64_t		 limit;			/* 1..200 */
};

struct fin_idempotency {
	const char	*key;			/* fin_idempotency_key_valid() */
	const unsigned char *request;		/* the bytes that must match */
	size_t		 request_len;
};

/* The response of a create: new, or replayed from its Idempotency-Key. */
struct fin_created {
	int		 status;
	struct json_object *body;		/* caller owns it */
	bool		 replayed;
};

bool		 fin_idempotency_key_valid(const char *key);
/* FIN_E_IDEMPOTENCY_KEY_REUSED when the key came with another body. */
enum fin_err	 fin_txn_create(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const struct fin_txn_input *,
		    const struct fin_idempotency *idem, struct fin_created *out) FIN_WUR;
/* *out is the transaction object; the caller owns it. */
enum fin_err	 fin_txn_get(struct fin_ctx *, const char *user_id, const char *id,
		    struct json_object **out) FIN_WUR;
enum fin_err	 fin_txn_update(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const char *id,
		    const struct fin_txn_input *, struct json_object **out) FIN_WUR;
enum fin_err	 fin_txn_delete(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const char *id) FIN_WUR;
enum fin_err	 fin_txn_restore(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const char *id, struct json_object **out) FIN_WUR;
/* {data, next_cursor}; FIN_E_INVALID_CURSOR for a forged cursor. */
enum fin_err	 fin_txn_list(struct fin_ctx *, struct fin_arena *,
		    const struct fin_txn_query *, struct json_object **out) FIN_WUR;
/* {from, to, currency_totals, by_category, by_month}. */
enum fin_err	 fin_txn_summary(struct fin_ctx *, const char *user_id,
		    const char *from, const char *to, struct json_object **out) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Response cache (lib/cache.c)                                        */
/* ------------------------------------------------------------------ */


/*
 * What the request's Cache-Control (or, without one, Pragma) asks of the
 * response cache: FIN_CACHE_NO_READ for no-cache or max-age=0 (a page
 * fresh from PostgreSQL), FIN_CACHE_NO_STORE for no-store (keep nothing
 * of the answer).  Either header may be NULL.
 */
#define FIN_CACHE_NO_READ	0x1u
#define FIN_CACHE_NO_STORE	0x2u
unsigned	 fin_cache_directives(const char *cache_control,
		    const char *pragma);
/* FIN_OK on a hit, FIN_E_NOT_FOUND on a miss, else Redis is down. */
enum fin_err	 fin_cache_get(struct fin_ctx *, struct fin_arena *,
		    const char *user_id, const char *kind, const char *query,
		    struct fin_cache_entry *out) FIN_WUR;
/* tag (an ETag, say; no newline) comes back with the page on a hit. */
void		 fin_cache_put(struct fin_ctx *, const char *user_id,
		    const struct fin_cache_entry *, const char *body,
		    const char *tag);
/* Bumps the user's generation: call after every committed write. */
void		 fin_cache_invalidate(struct fin_ctx *, const char *user_id);

/* ------------------------------------------------------------------ */
/* Feature flags and administration (lib/flags.c, lib/admin.c)         */
/* ------------------------------------------------------------------ */

bool		 fin_flag_key_valid(const char *key);	/* [a-z0-9_]{1,64} */
/* Stable bucket 0..99 of a user for a flag. */
int		 fin_flag_bucket(const char *key, const char *user_id);
/* Unknown flags are off; a change is seen within a second. */
bool		 fin_flag_enabled(struct fin_ctx *, const char *key, const char *user_id);
/* {flags: {"<key>": bool}} evaluated for the user. */
enum fin_err	 fin_flags_for_user(struct fin_ctx *, const char *user_id,
		    struct json_object **out) FIN_WUR;
/* {data: [{key, enabled, rollout_percent, description, updated_at, updated_by}]} */
enum fin_err	 fin_flags_admin_list(struct fin_ctx *, struct json_object **out) FIN_WUR;
/* Creates or changes a flag; audited.  description NULL keeps the old one. */
enum fin_err	 fin_flag_set(struct fin_ctx *, const struct fin_client *,
		    const char *admin_id, const char *key, bool enabled,
		    int rollout_percent, const char *description,
		    struct json_object **out) FIN_WUR;

/*
 * Makes the live account with this email an admin or a user again,
 * audited as role_changed; *changed is false when it had that role.
 * Takes effect on the next request: roles are read from PostgreSQL.
 */
enum fin_err	 fin_admin_set_role(struct fin_ctx *, const struct fin_client *,
		    const char *email, bool admin, bool *changed) FIN_WUR;
/* Undoes a soft deletion; live is a no-op, unknown FIN_E_NOT_FOUND. */
enum fin_err	 fin_admin_restore_user(struct fin_ctx *, const struct fin_client *,
		    const char *admin_id, const char *user_id) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Exports (lib/export.c, export_csv.c, export_pdf.c, export_user.c)   */
/* ------------------------------------------------------------------ */

/*
 * Exports are written through a callback, so that the library stays free
 * of FastCGI: each call hands over up to 64 KiB; false means the bytes
 * could not be delivered (the client went away) and the export stops.
 * Nothing is written before the export knows it can start, so an error
 * returned with no call made can still become a JSON error response;
 * after the first call, an error means the body is cut short, always at
 * a row boundary.  Each export writes an "export" audit event before its
 * last chunk.
 */
typedef bool	 fin_write_fn(void *arg, const char *buf, size_t len);

/*
 * RFC 4180 CSV of the user's live transactions, oldest first, within the
 * optional dates from..to (inclusive): a header row, CRLF line ends,
 * UTF-8; columns id, occurred_on, amount (decimal in the currency's minor
 * units: "-12.50"), amount_minor (the integer), currency, category,
 * description, created_at.  FIN_E_VALIDATION_ERROR for a malformed date.
 */
enum fin_err	 fin_export_csv(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const char *from, const char *to,
		    fin_write_fn *write, void *arg) FIN_WUR;

/*
 * A PDF statement of the same rows (libharu): holder, period, a table
 * with the amounts, totals per currency, "Page n of m".  The document is
 * built in memory before the first byte is written, so every error comes
 * before the body; FIN_E_VALIDATION_ERROR when the period holds more than
 * FIN_PDF_ROWS_MAX transactions.
 */
#define FIN_PDF_ROWS_MAX	50000
enum fin_err	 fin_export_pdf(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, const char *from, const char *to,
		    fin_write_fn *write, void *arg) FIN_WUR;
/* The pdf_export feature flag, for this user. */
bool		 fin_export_pdf_enabled(struct fin_ctx *, const char *user_id);

/*
 * Everything held about the user (GDPR art. 15 and 20) as one JSON
 * document, {generated_at, user, sessions, transactions (deleted ones
 * too), audit, idempotency_keys}, written row by row.
 */
enum fin_err	 fin_export_user(struct fin_ctx *, const struct fin_client *,
		    const char *user_id, fin_write_fn *write, void *arg) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Metrics shared by all workers (lib/metrics.c)                       */
/* ------------------------------------------------------------------ */

#define FIN_METRICS_ROUTES	64	/* route slots; 0 counts unmatched paths */
#define FIN_METRICS_METHODS	8	/* the last one counts unknown methods */
#define FIN_METRICS_STATUSES	20
#define FIN_METRICS_BUCKETS	12
#define FIN_METRICS_SLOTS	128	/* workers alive at once, for crash records */

enum fin_metric {
	FIN_M_WORKER_RESTARTS,
	FIN_M_DB_ERRORS,
	FIN_M_REDIS_ERRORS,
	FIN_M_RATE_LIMITED,
	FIN_M_RATELIMIT_FAIL_OPEN,
	/* Families by result: consecutive, in the order /metrics names them. */
	FIN_M_LOGIN_SUCCESS,
	FIN_M_LOGIN_FAILURE,
	FIN_M_LOGIN_LOCKED,
	FIN_M_CACHE_HIT,
	FIN_M_CACHE_MISS,
	FIN_M_CACHE_BYPASS,
	FIN_M_SESSION_REDIS,
	FIN_M_SESSION_POSTGRES,
	FIN_M__MAX
};

/* Master: creates the shared region; returns its fd (inherited) or -1. */
int		 fin_metrics_create(void);
/* Worker: maps the region the master created. */
bool		 fin_metrics_attach(int fd);
bool		 fin_metrics_attached(void);
void		 fin_metric_inc(enum fin_metric);
void		 fin_metrics_request(size_t route, size_t method, int status,
		    int64_t duration_us);
/* Marks what this worker is serving, for the master's crash report. */
void		 fin_metrics_request_begin(const char *request_id, const char *route);
void		 fin_metrics_request_end(void);
/* Master, after a worker died: what it was serving; frees its slot. */
bool		 fin_metrics_crash_record(int pid, char request_id[65], char route[64]);
/* The Prometheus text format, through write. */
enum fin_err	 fin_metrics_render(const char *const *routes, size_t nroutes,
		    const char *const *methods, size_t nmethods,
		    fin_write_fn *write, void *arg) FIN_WUR;

/* ------------------------------------------------------------------ */
/* Error reports to Sentry (lib/sentry.c)                              */
/* ------------------------------------------------------------------ */

struct fin_sentry_event {
	const char	*level;		/* "error" or "fatal" */
	const char	*message;
	const char	*route;		/* may be NULL */
	const char	*request_id;	/* may be NULL */
	const char	*user_id;	/* may be NULL */
};

/*
 * Sends one event to SENTRY_DSN's envelope endpoint, with a 1 s timeout.
 * Call it only after the response is finished.  Never carries a password,
 * token, cookie or body: only the fields above.  No-op without a DSN.
 */
enum fin_err	 fin_sentry_capture(const struct fin_config *,
		    const struct fin_sentry_event *) FIN_WUR;

/* -- end of public API -- */

#endif /* FINANCE_H */
