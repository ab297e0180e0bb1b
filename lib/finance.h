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
	char		*sentry_dsn;
	char		*release;
	char		*environment_name;
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

/* -- auth: jwt, password, sessions (declarations added by those modules) -- */

/* -- end of public API -- */

#endif /* FINANCE_H */
