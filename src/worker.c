/*
 * One worker: opens its connections, then loops accepting FastCGI requests
 * on the listening socket it shares with its siblings.  The socket is
 * non-blocking and the worker waits in ppoll(), so that SIGTERM is seen at
 * once while idle; its handler restarts interrupted calls (SA_RESTART), so
 * it never interrupts a request in flight: the request that has started
 * always gets its whole answer, or, if that cannot be written, a cut
 * connection rather than a short one that looks complete.
 */
#include "app.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/time.h>

#define POLL_MS		1000
#define DRAIN_MS	500	/* answering the backlog after SIGTERM */
#define DRAIN_IDLE_MS	100
#define INPUT_LEFT_MAX	(64 * 1024)	/* unread body we read away to close fast */
#define REPORT_WINDOW_MS (60 * 1000)	/* a Sentry event per route, code */
#define REPORT_KEYS	32		/* route and code pairs remembered */
/* The rest of the longest FastCGI record (content, padding), a header. */
#define CUT_BYTES	(65535 + 255 + 8)
#define CUT_SEND_MS	1000

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
	const struct route *row;	/* NULL: no route matched */
	char		 request_id[65];
	char		 route[64];
	char		 user_id[37];
};

/*
 * What this worker sent to Sentry lately.  Each send holds the worker
 * (its client has the answer, the next request waits), and during an
 * outage every request of a route fails the same way.  So a route and
 * code go out at most once a REPORT_WINDOW_MS, the repeats counted on the
 * next event of the pair; after a send that failed (Sentry down or slow)
 * nothing goes out for a REPORT_WINDOW_MS.  Sentry can hold a worker for
 * one timed-out send a minute, not one per request.
 */
struct report_key {
	const struct route *row;
	enum fin_err	 error;
	int64_t		 sent_ms;	/* 0: never sent */
	unsigned	 held;		/* repeats not sent since */
};

struct reports {
	struct report_key keys[REPORT_KEYS];
	size_t		 nkeys;
	int64_t		 quiet_until_ms;	/* after a failed send */
	bool		 ready_down;	/* /ready last answered 503 */
};

static void
remember(const struct request *req, struct outcome *out)
{
	out->status = req->status;
	out->error = req->error;
	out->row = req->route;
	snprintf(out->request_id, sizeof(out->request_id), "%s", req->request_id);
	snprintf(out->route, sizeof(out->route), "%s", req->route != NULL ?
	    req->route->pattern : req->uri_path != NULL ? req->uri_path : "");
	snprintf(out->user_id, sizeof(out->user_id), "%s",
	    req->user_id != NULL ? req->user_id : "");
}

/* The pair's entry; when all are taken, the least recently sent's. */
static struct report_key *
report_key(struct reports *r, const struct route *row, enum fin_err e)
{
	struct report_key *k, *oldest = NULL;
	size_t		 i;

	for (i = 0; i < r->nkeys; i++) {
		k = &r->keys[i];
		if (k->row == row && k->error == e)
			return k;
		if (oldest == NULL || k->sent_ms < oldest->sent_ms)
			oldest = k;
	}
	k = r->nkeys < REPORT_KEYS ? &r->keys[r->nkeys++] : oldest;
	k->row = row;
	k->error = e;
	k->sent_ms = 0;
	k->held = 0;
	return k;
}

/* After the client has its answer: a 5xx goes to Sentry (if configured). */
static void
report(const struct outcome *o, struct reports *r)
{
	struct fin_sentry_event ev;
	struct report_key *k;
	char		 msg[200];
	int64_t		 now;
	bool		 ready;

	ready = o->row != NULL && o->row->handler == h_ready;
	if (ready && o->status < 500)
		r->ready_down = false;
	if (o->status < 500 || worker_cfg->sentry_dsn[0] == '\0')
		return;
	/*
	 * A load balancer asks /ready every few seconds, and its 503 is
	 * /ready doing its job: the outage shows there and in
	 * db_errors_total / redis_errors_total.  One event when /ready starts
	 * failing, then none until it has answered 200 again.
	 */
	if (ready) {
		if (r->ready_down)
			return;
		r->ready_down = true;
	}
	k = report_key(r, o->row, o->error);
	now = fin_now_ms();
	if ((k->sent_ms != 0 && now - k->sent_ms < REPORT_WINDOW_MS) ||
	    now < r->quiet_until_ms) {
		k->held++;
		return;
	}
	if (k->held > 0)
		snprintf(msg, sizeof(msg), "%d %s on %s (and %u more since "
		    "the last report)", o->status, fin_err_code(o->error),
		    o->route, k->held);
	else
		snprintf(msg, sizeof(msg), "%d %s on %s", o->status,
		    fin_err_code(o->error), o->route);
	k->sent_ms = now;
	k->held = 0;
	ev.level = "error";
	ev.message = msg;
	ev.route = o->route;
	ev.request_id = o->request_id;
	ev.user_id = o->user_id[0] != '\0' ? o->user_id : NULL;
	if (fin_sentry_capture(worker_cfg, &ev) != FIN_OK) {
		r->quiet_until_ms = fin_now_ms() + REPORT_WINDOW_MS;
		fin_log(FIN_LOG_WARN, "sentry", "error report not sent: "
		    "sending none for %d s", REPORT_WINDOW_MS / 1000);
	}
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
		/*
		 * Refused while it was read (a malformed query string, out of
		 * memory): the error is stored here, and the pipeline gives it
		 * CORS, the common headers, the log line and the metrics like
		 * any other answer.
		 */
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

/*
 * The response could not be written whole: a write to nginx failed half
 * way (libfcgi keeps the error on the stream).  FCGX_Finish_r would still
 * write what is buffered and FCGI_END_REQUEST, and nginx would end the
 * client's response cleanly: a short file that looks complete.  Closing
 * the connection is no better, because nginx (fastcgi_keep_conn off)
 * takes the end of the connection for the end of the response.  What
 * nginx does treat as a failed response is a record it cannot parse: it
 * then cuts the client's connection, and the client sees a transfer
 * error.  Bytes of value 0 are such a record (FastCGI version 0), and
 * CUT_BYTES of them also fill out any record left half written, so that
 * nginx reads zeros as a header whatever state the stream is in.
 * Bounded by CUT_SEND_MS when nginx does not read; then closed, detached
 * so that close() does not wait for nginx to hang up.
 */
static void
cut_short(FCGX_Request *f, const struct outcome *o, int err)
{
	char		 zeros[4096];
	struct timeval	 tv = { CUT_SEND_MS / 1000,
			    (CUT_SEND_MS % 1000) * 1000 };
	size_t		 left = CUT_BYTES;
	ssize_t		 n;

	fin_log(FIN_LOG_WARN, "response_cut", "could not write the whole "
	    "response to request %s: %s; the connection is cut",
	    o->request_id, err > 0 ? strerror(err) : "libfcgi error");
	memset(zeros, 0, sizeof(zeros));
	(void)setsockopt(f->ipcFd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (left > 0) {
		n = send(f->ipcFd, zeros, left < sizeof(zeros) ? left :
		    sizeof(zeros), MSG_NOSIGNAL);
		if (n <= 0)
			break;
		left -= (size_t)n;
	}
	FCGX_Detach(f);
	FCGX_Free(f, 1);
}

/* One accepted request, start to finish, then the report. */
static void
serve(FCGX_Request *f, struct pollfd *listen, struct fin_arena *arena,
    struct outcome *outcome, struct reports *reports)
{
	int	 err;

	handle(f, arena, outcome);
	flush_unless_busy(listen);
	err = FCGX_GetError(f->out);
	if (err != 0)
		cut_short(f, outcome, err);
	else {
		close_fast_if_read(f);
		FCGX_Finish_r(f);
	}
	fin_metrics_request_end();
	fin_arena_reset(arena);
	report(outcome, reports);
}

/*
 * Idle: waits for a connection, a stop signal or POLL_MS.  The stop
 * signals are blocked from the test of the flag until ppoll() unblocks
 * them atomically, so a SIGTERM that lands just before the wait is not
 * missed for a whole POLL_MS.  SA_RESTART does not apply to ppoll() (nor
 * to poll(): signal(7) lists them as never restarted): it wakes up.
 */
static void
idle_wait(struct pollfd *listen, const sigset_t *stop_sigs)
{
	struct timespec	 ts = { POLL_MS / 1000, (POLL_MS % 1000) * 1000000L };
	sigset_t	 old;

	if (sigprocmask(SIG_BLOCK, stop_sigs, &old) != 0) {
		(void)poll(listen, 1, POLL_MS);
		return;
	}
	if (!stopping)
		(void)ppoll(listen, 1, &ts, &old);
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
}

/*
 * FCGX_Accept_r with the stop signals held back.  After accept() on a Unix
 * socket libfcgi waits in select() for the connection's first bytes, and
 * select() is never restarted: a SIGTERM there made libfcgi close the
 * connection it had just taken, and nginx answered that request 502.
 * Held back, the signal lands once the request is read; the loop sees it
 * after serving.
 */
static int
accept_request(FCGX_Request *f, const sigset_t *stop_sigs)
{
	sigset_t	 old;
	int		 rc;

	if (sigprocmask(SIG_BLOCK, stop_sigs, &old) != 0)
		return FCGX_Accept_r(f);
	rc = FCGX_Accept_r(f);
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/*
 * In a reload the master retires an old worker only once the new one is
 * up: one byte on the pipe it named in FINANCE_READY_FD says so.  A
 * worker that dies first closes the pipe unwritten, and the reload stops.
 */
static void
tell_master_ready(void)
{
	const char	*v;
	int64_t		 fd;

	v = getenv("FINANCE_READY_FD");
	if (v == NULL || !fin_parse_int64(v, 3, 65535, &fd))
		return;
	if (write((int)fd, "1", 1) != 1)
		fin_log(FIN_LOG_WARN, "worker_start", "could not tell the "
		    "master this worker is up: %s", strerror(errno));
	close((int)fd);
	(void)unsetenv("FINANCE_READY_FD");
}

int
worker_main(int listen_fd)
{
	struct fin_config *cfg;
	struct fin_arena *arena;
	struct sigaction sa;
	sigset_t	 stop_sigs;
	FCGX_Request	 f;
	struct outcome	 outcome;
	struct reports	 reports;
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

	/*
	 * SA_RESTART: a stop signal must not interrupt the request in flight.
	 * Without it, a write to nginx blocked in a long export failed with
	 * EINTR, and the export ended short.  The idle wait still wakes up
	 * (see idle_wait).  Installed before FCGX_Init(), which puts its own
	 * handler on a signal left at SIG_DFL.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = 0;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	memset(&reports, 0, sizeof(reports));

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
	tell_master_ready();
	fin_log(FIN_LOG_INFO, "worker_ready", "worker accepting requests");

	/*
	 * Accept first, and poll only when nothing is waiting (EAGAIN, also
	 * when a sibling won the race): under load the backlog is seldom
	 * empty, and a poll() per request would cost as much as the accept.
	 */
	while (!stopping) {
		if (accept_request(&f, &stop_sigs) >= 0) {
			serve(&f, &pfd, arena, &outcome, &reports);
			continue;
		}
		flush_unless_busy(&pfd);
		/* Woken by a connection, SIGTERM or the timeout: all loop back. */
		idle_wait(&pfd, &stop_sigs);
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
		if (accept_request(&f, &stop_sigs) >= 0)
			serve(&f, &pfd, arena, &outcome, &reports);
	}
	FCGX_Free(&f, 1);
	fin_redis_flush(worker_ctx);
	fin_log(FIN_LOG_INFO, "worker_exit", "worker stopped");
	fin_arena_free(arena);
	fin_ctx_free(worker_ctx);
	fin_config_free(cfg);
	return 0;
}
