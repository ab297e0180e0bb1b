/*
 * One worker: opens its connections, then loops accepting FastCGI requests
 * on the listening socket it shares with its siblings.  The socket is
 * non-blocking and the worker waits in poll(), so that SIGTERM is seen
 * within a second while idle and never interrupts a request in flight:
 * the request that has started always gets its answer.
 */
#include "app.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_MS		1000
#define DRAIN_MS	500	/* answering the backlog after SIGTERM */
#define DRAIN_IDLE_MS	100
#define INPUT_LEFT_MAX	(64 * 1024)	/* unread body we read away to close fast */

/* The only globals: this worker's connections and config (see STYLE.md). */
static volatile sig_atomic_t stopping;
static const struct fin_config *worker_cfg;
static struct fin_ctx *worker_ctx;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* What the worker reports to Sentry once the response is finished. */
struct outcome {
	int		 status;
	enum fin_err	 error;
	char		 request_id[65];
	char		 route[64];
	char		 user_id[37];
};

static void
remember(const struct request *req, struct outcome *out)
{
	out->status = req->status;
	out->error = req->error;
	snprintf(out->request_id, sizeof(out->request_id), "%s", req->request_id);
	snprintf(out->route, sizeof(out->route), "%s", req->route != NULL ?
	    req->route->pattern : req->uri_path != NULL ? req->uri_path : "");
	snprintf(out->user_id, sizeof(out->user_id), "%s",
	    req->user_id != NULL ? req->user_id : "");
}

/* After the client has its answer: a 5xx goes to Sentry (if configured). */
static void
report(const struct outcome *o)
{
	struct fin_sentry_event ev;
	char		 msg[160];

	if (o->status < 500 || worker_cfg->sentry_dsn[0] == '\0')
		return;
	snprintf(msg, sizeof(msg), "%d %s on %s", o->status,
	    fin_err_code(o->error), o->route);
	ev.level = "error";
	ev.message = msg;
	ev.route = o->route;
	ev.request_id = o->request_id;
	ev.user_id = o->user_id[0] != '\0' ? o->user_id : NULL;
	if (fin_sentry_capture(worker_cfg, &ev) != FIN_OK)
		fin_log(FIN_LOG_WARN, "sentry", "error report not sent");
}

static void
handle(FCGX_Request *f, struct fin_arena *arena, struct outcome *out)
{
	struct request	 req;
	enum fin_err	 e;

	memset(&req, 0, sizeof(req));
	req.arena = arena;
	req.ctx = worker_ctx;
	req.cfg = worker_cfg;
	req.started_us = fin_now_us();
	e = request_read(&req, f);
	if (e != FIN_OK) {
		if (req.uri_path == NULL)
			req.uri_path = req.path = "";
		if (req.if_none_match == NULL)
			req.if_none_match = "";
		if (req.ip == NULL)
			req.ip = "";
		if (req.origin == NULL)
			req.origin = "";
		if (e == FIN_E_VALIDATION_ERROR && req.query_fault != NULL)
			(void)field_error(&req, req.query_fault_field,
			    req.query_fault);
		else
			http_error(&req, e, NULL, NULL);
		response_finish(&req);
		remember(&req, out);
		return;
	}
	fin_metrics_request_begin(req.request_id, req.uri_path);
	pipeline_run(&req);
	remember(&req, out);
}

/*
 * Closing a socket with unread input resets the connection, so libfcgi
 * shuts its side down and waits for nginx to hang up before close(): one
 * more wait on nginx every request.  With the input read to its end
 * here, a plain close() is safe, and FCGX_Detach() asks libfcgi for one.
 */
static void
close_fast_if_read(FCGX_Request *f)
{
	char	 buf[4096];
	size_t	 left = 0;
	int	 n;

	while ((n = FCGX_GetStr(buf, sizeof(buf), f->in)) > 0)
		if ((left += (size_t)n) > INPUT_LEFT_MAX)
			return;
	if (FCGX_HasSeenEOF(f->in) == EOF)
		FCGX_Detach(f);
}

/*
 * A cache fill is sent without waiting for its reply, and rides with the
 * next request's Redis round trip while requests keep coming.  With no
 * request waiting, it is written out now, before the client has the answer
 * that would let it ask again (and look for the page on another worker).
 */
static void
flush_unless_busy(struct pollfd *listen)
{
	if (fin_redis_unflushed(worker_ctx) && poll(listen, 1, 0) == 0)
		fin_redis_flush(worker_ctx);
}

/* One accepted request, start to finish, then the report. */
static void
serve(FCGX_Request *f, struct pollfd *listen, struct fin_arena *arena,
    struct outcome *outcome)
{
	handle(f, arena, outcome);
	flush_unless_busy(listen);
	close_fast_if_read(f);
	FCGX_Finish_r(f);
	fin_metrics_request_end();
	fin_arena_reset(arena);
	report(outcome);
}

int
worker_main(int listen_fd)
{
	struct fin_config *cfg;
	struct fin_arena *arena;
	struct sigaction sa;
	FCGX_Request	 f;
	struct outcome	 outcome;
	int64_t		 drain_until;
	const char	*mfd;
	int64_t		 fd;
	char		 why[256];
	struct pollfd	 pfd = { .events = POLLIN };
	int		 flags;

	cfg = fin_config_load(true, why, sizeof(why));
	if (cfg == NULL) {
		fin_log(FIN_LOG_ERROR, "config_invalid", "could not load config: %s", why);
		return 1;
	}
	fin_log_init(cfg->log_level, "worker");
	/* The master's shared counters: metrics are summed over workers. */
	mfd = getenv("FINANCE_METRICS_FD");
	if (mfd != NULL && (!fin_parse_int64(mfd, 3, 65535, &fd) ||
	    !fin_metrics_attach((int)fd)))
		fin_log(FIN_LOG_WARN, "metrics", "could not attach metrics: "
		    "/metrics will answer 503");
	worker_cfg = cfg;
	worker_ctx = fin_ctx_new(cfg);
	arena = fin_arena_new(ARENA_MAX);
	if (worker_ctx == NULL || arena == NULL) {
		fin_log(FIN_LOG_ERROR, "worker_start", "could not start worker: out of memory");
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;	/* no SA_RESTART: poll() wakes up */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	flags = fcntl(listen_fd, F_GETFL);
	if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		fin_log(FIN_LOG_ERROR, "worker_start",
		    "could not make the listening socket non-blocking: %s",
		    strerror(errno));
		return 1;
	}
	pfd.fd = listen_fd;
	if (FCGX_Init() != 0 || FCGX_InitRequest(&f, listen_fd, 0) != 0) {
		fin_log(FIN_LOG_ERROR, "worker_start", "could not initialise libfcgi");
		return 1;
	}
	/* Open connections now so the first request does not pay for them. */
	if (fin_db_ping(worker_ctx) != FIN_OK)
		fin_log(FIN_LOG_WARN, "worker_start", "postgresql not ready yet");
	if (fin_redis_ping(worker_ctx) != FIN_OK)
		fin_log(FIN_LOG_WARN, "worker_start", "redis not ready yet");
	fin_log(FIN_LOG_INFO, "worker_ready", "worker accepting requests");

	/*
	 * Accept first, and poll only when nothing is waiting (EAGAIN, also
	 * when a sibling won the race): under load the backlog is seldom
	 * empty, and a poll() per request would cost as much as the accept.
	 */
	while (!stopping) {
		if (FCGX_Accept_r(&f) >= 0) {
			serve(&f, &pfd, arena, &outcome);
			continue;
		}
		flush_unless_busy(&pfd);
		/* Woken by a connection, SIGTERM or the timeout: all loop back. */
		(void)poll(&pfd, 1, POLL_MS);
	}
	/*
	 * Requests nginx queued before we stopped are answered, not reset:
	 * take what is already in the backlog (the socket does not block),
	 * for at most DRAIN_MS, so a steady stream cannot keep us alive.
	 */
	drain_until = fin_now_ms() + DRAIN_MS;
	while (fin_now_ms() < drain_until) {
		/* Quiet for DRAIN_IDLE_MS: nginx has nothing more in flight. */
		if (poll(&pfd, 1, DRAIN_IDLE_MS) <= 0)
			break;
		if (FCGX_Accept_r(&f) >= 0)
			serve(&f, &pfd, arena, &outcome);
	}
	FCGX_Free(&f, 1);
	fin_redis_flush(worker_ctx);
	fin_log(FIN_LOG_INFO, "worker_exit", "worker stopped");
	fin_arena_free(arena);
	fin_ctx_free(worker_ctx);
	fin_config_free(cfg);
	return 0;
}
