/*
 * The FastCGI front end: request, response, route table and pipeline.
 * src/ calls only fin_* functions; it knows HTTP, never SQL.
 */
#ifndef FIN_APP_H
#define FIN_APP_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fcgiapp.h>

#include "finance.h"

#define BODY_MAX	(1024 * 1024)	/* API.md: larger bodies get 413 */
#define ARENA_MAX	(16 * 1024 * 1024)
#define MAX_PARAMS	4		/* {captures} in one route pattern */
#define MAX_RESP_HEADERS 24
#define MAX_QUERY_PARAMS 32

enum method {
	M_GET,
	M_HEAD,
	M_POST,
	M_PUT,
	M_PATCH,
	M_DELETE,
	M_OPTIONS,
	M__MAX
};

/* Route flags: the policy of an endpoint, read by the pipeline. */
#define R_PUBLIC	0x0001	/* no authentication */
#define R_AUTH		0x0002	/* Bearer access token required */
#define R_ADMIN		0x0004	/* role admin required (implies R_AUTH) */
#define R_TOKENS	0x0008	/* response carries tokens: Cache-Control: no-store */
#define R_ROOT		0x0020	/* pattern matches the whole path, not /api/v1/... */
#define R_TEST_ONLY	0x0040	/* exists only when FINANCE_ENV=test (404 otherwise) */
#define R_RL_SIGNUP	0x0080	/* signup limit per client IP */
#define R_RL_LOGIN	0x0100	/* login limits per client IP and per email */
#define R_NO_RL		0x0200	/* no rate limit (health checks of load balancers) */
#define R_CACHED	0x0400	/* first pages come from the Redis response cache */

struct request;
typedef enum fin_err handler_fn(struct request *);

struct route {
	enum method	 method;
	const char	*pattern;
	handler_fn	*handler;
	unsigned	 flags;
	const struct fin_field *body;	/* JSON body spec; NULL: no body */
};

#define MAX_BODY_FIELDS	16

struct header {
	const char	*name;
	const char	*value;
};

struct query_param {
	const char	*name;
	const char	*value;
};

struct request {
	struct fin_arena *arena;
	struct fin_ctx	*ctx;
	const struct fin_config *cfg;
	FCGX_Request	*fcgx;
	int64_t		 started_us;

	/* From the CGI environment. */
	enum method	 method;		/* M__MAX when unknown */
	const char	*method_name;
	const char	*uri_path;		/* PATH_INFO, whole */
	const char	*path;			/* after /api/v1 */
	const char	*query_string;
	struct query_param query[MAX_QUERY_PARAMS];
	size_t		 nquery;
	const char	*query_fault;		/* why the query string is refused */
	const char	*query_fault_field;	/* ... and which parameter */
	const char	*ip;
	const char	*user_agent;
	const char	*content_type;
	const char	*origin;
	const char	*if_none_match;
	const char	*authorization;
	const char	*idempotency_key;	/* NULL when the header is absent */
	unsigned	 cache_directives;	/* FIN_CACHE_*, from Cache-Control */
	char		 request_id[65];
	char		*body;
	size_t		 body_len;
	bool		 body_too_large;
	bool		 body_short;		/* fewer bytes than CONTENT_LENGTH */
	struct json_object *json;		/* parsed body (routes with a spec) */
	struct fin_value values[MAX_BODY_FIELDS]; /* validated, in spec order */

	/* Routing. */
	const struct route *route;
	const char	*params[MAX_PARAMS];
	size_t		 nparams;

	/* Who is calling (set by the auth step). */
	const char	*user_id;		/* NULL: anonymous */
	struct fin_principal principal;
	struct fin_client client;
	struct fin_gate_result gate;		/* the limits checked so far */

	/* The response, written by response_finish() or streamed. */
	int		 status;
	struct header	 headers[MAX_RESP_HEADERS];
	size_t		 nheaders;
	struct json_object *resp_body;		/* NULL: no body */
	const char	*resp_raw;		/* JSON text already made (cache hits) */
	size_t		 resp_raw_len;
	const char	*resp_etag;		/* resp_raw's ETag, when known */
	bool		 responded;		/* headers already on the wire */
	bool		 has_response;
	enum fin_err	 error;			/* what http_error() last wrote */
};

/* request.c */
enum fin_err	 request_read(struct request *, FCGX_Request *);
const char	*query_parse(struct fin_arena *, const char *qs,
		    struct query_param *out, size_t *n, const char **field);
const char	*request_query(const struct request *, const char *name);
const char	*request_param(const struct request *, size_t i);
const char	*method_name(enum method);

/* The validated body field called name; NULL when absent or not in the spec. */
const struct fin_value *request_field(const struct request *, const char *name);
/* Parses ?limit= within 1..200 (default 50); false means 400 already stored. */
bool		 request_limit(struct request *, int64_t *limit);
/* ?from= and ?to=: optional real dates, from <= to; 400 stored otherwise. */
enum fin_err	 request_date_range(struct request *, const char **from,
		    const char **to);
/* Stores a 400 VALIDATION_ERROR naming one field; returns the error. */
enum fin_err	 field_error(struct request *, const char *field, const char *why);

/* response.c */
void		 resp_header(struct request *, const char *name, const char *value);
void		 reply_json(struct request *, int status, struct json_object *body);
void		 reply_empty(struct request *, int status);
/* ETAG_LEN bytes and a NUL: a strong tag of the exact bytes. */
#define ETAG_LEN	34
void		 response_etag(const char *body, size_t len, char out[ETAG_LEN + 1]);
/* A body that is already JSON text (arena-owned), sent as it is. */
void		 reply_json_text(struct request *, int status, const char *body,
		    size_t len);
/*
 * The one JSON error writer: status, code and sentence from errors.def,
 * the request id, "fields" when given, and the headers the code calls for.
 * message, when not NULL, replaces the sentence (ACCOUNT_LOCKED's minutes).
 */
void		 http_error(struct request *, enum fin_err, struct json_object *fields,
		    const char *message);
/* Writes headers and body of the stored response to the client. */
void		 response_finish(struct request *);
/* Streaming responses: headers now, then chunks. */
bool		 resp_stream_begin(struct request *, int status, const char *content_type);
bool		 resp_stream_write(struct request *, const char *buf, size_t len);
void		 resp_stream_abort(struct request *);

/* router.c */
enum route_match {
	ROUTE_FOUND,
	ROUTE_NO_PATH,		/* 404 */
	ROUTE_NO_METHOD		/* 405, allow[] filled */
};
enum route_match router_match(const struct route *table, size_t n, enum method,
		    const char *path, bool root, const struct route **out,
		    const char **params, size_t *nparams, struct fin_arena *,
		    bool allow[M__MAX]);
size_t		 router_allow_header(const bool allow[M__MAX], char *out, size_t outsz);

/* routes.c */
extern const struct route routes[];
extern const size_t nroutes;

/* pipeline.c */
void		 pipeline_run(struct request *);

/* worker.c */
int		 worker_main(int listen_fd);

/* Handlers (h_*.c) */
handler_fn	 h_health;
handler_fn	 h_ready;
handler_fn	 h_debug_sleep;
handler_fn	 h_metrics;
handler_fn	 h_auth_signup;
handler_fn	 h_auth_login;
handler_fn	 h_auth_refresh;
handler_fn	 h_auth_logout;
handler_fn	 h_auth_me;
handler_fn	 h_auth_password;
handler_fn	 h_auth_delete_me;
handler_fn	 h_sessions_list;
handler_fn	 h_session_revoke;
handler_fn	 h_sessions_revoke_others;
handler_fn	 h_audit_list;
handler_fn	 h_txn_create;
handler_fn	 h_txn_list;
handler_fn	 h_txn_get;
handler_fn	 h_txn_update;
handler_fn	 h_txn_delete;
handler_fn	 h_txn_restore;
handler_fn	 h_txn_summary;
handler_fn	 h_export_csv;
handler_fn	 h_export_pdf;
handler_fn	 h_export_me;
handler_fn	 h_flags;
handler_fn	 h_admin_flags_list;
handler_fn	 h_admin_flag_put;
handler_fn	 h_admin_audit;
handler_fn	 h_admin_user_restore;

/* Body specs (routes.c) */
extern const struct fin_field signup_spec[];
extern const struct fin_field login_spec[];
extern const struct fin_field refresh_spec[];
extern const struct fin_field password_spec[];
extern const struct fin_field delete_me_spec[];
extern const struct fin_field txn_create_spec[];
extern const struct fin_field txn_update_spec[];
extern const struct fin_field flag_spec[];

#endif /* FIN_APP_H */
