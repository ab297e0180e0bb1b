/*
 * Prometheus metrics summed over every worker.  The master creates one
 * shared memory region (a memfd, so that it survives the exec of each
 * worker: the fd number travels in FINANCE_METRICS_FD) and workers add to
 * its counters with atomic operations.  Nothing is locked and nothing is
 * sent between processes; GET /metrics reads the sums on any worker.
 *
 * The region also holds one slot per live worker with the request it is
 * serving, so that when a worker dies the master can report which request
 * killed it without the worker running any code after the crash.
 */
#include "setup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define METRICS_MAGIC	0x66696e6d65747232ULL	/* "finmetr2": the layout changed */

static const int status_codes[FIN_METRICS_STATUSES] = {
	200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 413, 415, 422, 423,
	429, 500, 502, 503, 504, 0	/* 0: any other */
};

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const uint64_t bucket_us[FIN_METRICS_BUCKETS - 1] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000
};
static const char *const bucket_le[FIN_METRICS_BUCKETS] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
	"0.5", "1", "2.5", "+Inf"
};

struct worker_slot {
	int32_t		 pid;
	char		 request_id[65];
	char		 route[64];
};

struct fin_metrics_shm {
	uint64_t	 magic;
	uint64_t	 counters[FIN_M__MAX];
	uint64_t	 requests[FIN_METRICS_ROUTES][FIN_METRICS_METHODS][FIN_METRICS_STATUSES];
	uint64_t	 buckets[FIN_METRICS_ROUTES][FIN_METRICS_BUCKETS];
	uint64_t	 count[FIN_METRICS_ROUTES];
	uint64_t	 sum_us[FIN_METRICS_ROUTES];
	struct worker_slot slots[FIN_METRICS_SLOTS];
};

/* This process's mapping of the region; NULL when metrics are off. */
static struct fin_metrics_shm *shm;
/* A worker's own crash-record slot, claimed once: no getpid() a request. */
static struct worker_slot *own_slot;

int
fin_metrics_create(void)
{
	int	 fd;
	void	*p;

	fd = memfd_create("finance-metrics", 0);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, sizeof(struct fin_metrics_shm)) != 0) {
		close(fd);
		return -1;
	}
	p = mmap(NULL, sizeof(struct fin_metrics_shm), PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return -1;
	}
	shm = p;
	shm->magic = METRICS_MAGIC;
	return fd;
}

bool
fin_metrics_attach(int fd)
{
	void	*p;

	p = mmap(NULL, sizeof(struct fin_metrics_shm), PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return false;
	if (((struct fin_metrics_shm *)p)->magic != METRICS_MAGIC) {
		munmap(p, sizeof(struct fin_metrics_shm));
		return false;
	}
	shm = p;
	own_slot = NULL;
	return true;
}

static void
add(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static uint64_t
get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

bool
fin_metrics_attached(void)
{
	return shm != NULL;
}

void
fin_metric_inc(enum fin_metric m)
{
	if (shm != NULL && m < FIN_M__MAX)
		add(&shm->counters[m], 1);
}

void
fin_metrics_request(size_t route, size_t method, int status, int64_t us)
{
	size_t	 s, b;

	if (shm == NULL)
		return;
	if (route >= FIN_METRICS_ROUTES)
		route = 0;
	if (method >= FIN_METRICS_METHODS)
		method = FIN_METRICS_METHODS - 1;
	for (s = 0; s < FIN_METRICS_STATUSES - 1; s++)
		if (status_codes[s] == status)
			break;
	add(&shm->requests[route][method][s], 1);
	if (us < 0)
		us = 0;
	for (b = 0; b < FIN_METRICS_BUCKETS - 1; b++)
		if ((uint64_t)us <= bucket_us[b])
			break;
	add(&shm->buckets[route][b], 1);
	add(&shm->count[route], 1);
	add(&shm->sum_us[route], (uint64_t)us);
}

/* ------------------------------------------------------------------ */
/* Crash records                                                       */
/* ------------------------------------------------------------------ */

static struct worker_slot *
slot_of(int pid, bool claim)
{
	size_t	 i;

	if (shm == NULL)
		return NULL;
	for (i = 0; i < FIN_METRICS_SLOTS; i++)
		if (shm->slots[i].pid == pid)
			return &shm->slots[i];
	if (!claim)
		return NULL;
	for (i = 0; i < FIN_METRICS_SLOTS; i++) {
		int32_t free_pid = 0;

		if (__atomic_compare_exchange_n(&shm->slots[i].pid, &free_pid,
		    pid, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return &shm->slots[i];
	}
	return NULL;
}

void
fin_metrics_request_begin(const char *request_id, const char *route)
{
	struct worker_slot *s;

	if (own_slot == NULL && shm != NULL)
		own_slot = slot_of((int)getpid(), true);
	if ((s = own_slot) == NULL)
		return;
	snprintf(s->request_id, sizeof(s->request_id), "%s", request_id);
	snprintf(s->route, sizeof(s->route), "%s", route != NULL ? route : "");
}

void
fin_metrics_request_end(void)
{
	struct worker_slot *s = own_slot;

	if (s != NULL) {
		s->request_id[0] = '\0';
		s->route[0] = '\0';
	}
}

bool
fin_metrics_crash_record(int pid, char request_id[65], char route[64])
{
	struct worker_slot *s = slot_of(pid, false);
	bool	 busy;

	if (s == NULL)
		return false;
	busy = s->request_id[0] != '\0';
	snprintf(request_id, 65, "%s", s->request_id);
	snprintf(route, 64, "%s", s->route);
	memset(s->request_id, 0, sizeof(s->request_id));
	__atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
	return busy;
}

/* ------------------------------------------------------------------ */
/* The text format                                                     */
/* ------------------------------------------------------------------ */

struct out {
	fin_write_fn	*write;
	void		*arg;
	bool		 ok;
};

static void
emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
emit(struct out *o, const char *fmt, ...)
{
	char	 line[512];
	va_list	 ap;
	int	 n;

	if (!o->ok)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	o->ok = o->write(o->arg, line, (size_t)n);
}

/* A counter family of three results, counted in consecutive slots. */
static void
by_label(struct out *o, const char *name, const char *help,
    const char *label, enum fin_metric first, const char *const value[],
    int n)
{
	int	 i;

	emit(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (i = 0; i < n; i++)
		emit(o, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, value[i],
		    get(&shm->counters[first + i]));
}

enum fin_err
fin_metrics_render(const char *const *routes, size_t nroutes,
    const char *const *methods, size_t nmethods, fin_write_fn *write, void *arg)
{
	struct out	 o = { write, arg, true };
	size_t		 r, m, s, b;
	uint64_t	 cum;

	if (shm == NULL)
		return FIN_E_SERVICE_UNAVAILABLE;
	if (nroutes > FIN_METRICS_ROUTES)
		nroutes = FIN_METRICS_ROUTES;
	if (nmethods > FIN_METRICS_METHODS)
		nmethods = FIN_METRICS_METHODS;
	emit(&o, "# HELP http_requests_total HTTP requests answered, by route, method and status.\n"
	    "# TYPE http_requests_total counter\n");
	for (r = 0; r < nroutes; r++)
		for (m = 0; m < nmethods; m++)
			for (s = 0; s < FIN_METRICS_STATUSES; s++) {
				uint64_t v = get(&shm->requests[r][m][s]);

				if (v == 0)
					continue;
				if (status_codes[s] != 0)
					emit(&o, "http_requests_total{route=\"%s\",method=\"%s\","
					    "status=\"%d\"} %" PRIu64 "\n", routes[r], methods[m],
					    status_codes[s], v);
				else
					emit(&o, "http_requests_total{route=\"%s\",method=\"%s\","
					    "status=\"other\"} %" PRIu64 "\n", routes[r],
					    methods[m], v);
			}
	emit(&o, "# HELP http_request_duration_seconds Time from request to response, by route.\n"
	    "# TYPE http_request_duration_seconds histogram\n");
	for (r = 0; r < nroutes; r++) {
		if (get(&shm->count[r]) == 0)
			continue;
		cum = 0;
		for (b = 0; b < FIN_METRICS_BUCKETS; b++) {
			cum += get(&shm->buckets[r][b]);
			emit(&o, "http_request_duration_seconds_bucket{route=\"%s\","
			    "le=\"%s\"} %" PRIu64 "\n", routes[r], bucket_le[b], cum);
		}
		emit(&o, "http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
		    routes[r], (double)get(&shm->sum_us[r]) / 1e6);
		emit(&o, "http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
		    routes[r], cum);
	}
	emit(&o, "# HELP worker_restarts_total Workers that died and were replaced.\n"
	    "# TYPE worker_restarts_total counter\n"
	    "worker_restarts_total %" PRIu64 "\n", get(&shm->counters[FIN_M_WORKER_RESTARTS]));
	emit(&o, "# HELP db_errors_total PostgreSQL statements that failed.\n"
	    "# TYPE db_errors_total counter\n"
	    "db_errors_total %" PRIu64 "\n", get(&shm->counters[FIN_M_DB_ERRORS]));
	emit(&o, "# HELP redis_errors_total Redis commands or connections that failed.\n"
	    "# TYPE redis_errors_total counter\n"
	    "redis_errors_total %" PRIu64 "\n", get(&shm->counters[FIN_M_REDIS_ERRORS]));
	emit(&o, "# HELP rate_limited_total Requests refused with 429.\n"
	    "# TYPE rate_limited_total counter\n"
	    "rate_limited_total %" PRIu64 "\n", get(&shm->counters[FIN_M_RATE_LIMITED]));
	emit(&o, "# HELP ratelimit_fail_open_total Requests let through because Redis was down.\n"
	    "# TYPE ratelimit_fail_open_total counter\n"
	    "ratelimit_fail_open_total %" PRIu64 "\n",
	    get(&shm->counters[FIN_M_RATELIMIT_FAIL_OPEN]));
	by_label(&o, "logins_total", "Login attempts by result.", "result",
	    FIN_M_LOGIN_SUCCESS, (const char *const[]){ "success", "failure",
	    "locked" }, 3);
	by_label(&o, "cache_responses_total", "Cacheable pages (first list "
	    "page, summary) by how the response cache served them.", "result",
	    FIN_M_CACHE_HIT, (const char *const[]){ "hit", "miss", "bypass" }, 3);
	/*
	 * PostgreSQL answers for a session when Redis is down, on a mirror
	 * miss, and for a minute after a worker starts (it has not heard the
	 * revocations announced before it listened): a rise here is load on
	 * PostgreSQL that the mirror normally takes.
	 */
	by_label(&o, "session_checks_total", "Authenticated requests by what "
	    "said their session was alive.", "source", FIN_M_SESSION_REDIS,
	    (const char *const[]){ "redis", "postgres" }, 2);
	return o.ok ? FIN_OK : FIN_E_INTERNAL_ERROR;
}
