/*
 * finance-fcgi: the prefork master.  spawn-fcgi hands it the listening
 * socket on fd 0; it starts N workers (each a fresh exec of this binary,
 * so that a reload picks up a new binary and a new env file), respawns any
 * that die with a backoff, and handles the signals of a service:
 *
 *   SIGTERM, SIGINT  graceful stop: workers finish the request in hand
 *                    (at most SHUTDOWN_TIMEOUT seconds) and the master
 *                    exits 0;
 *   SIGHUP           reload: workers are replaced one at a time, the new
 *                    one started before the old one is asked to leave, so
 *                    the socket always has a worker and no request fails.
 */
#include "app.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS		64
#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		5000
#define QUICK_DEATH_MS		1000	/* dying sooner than this grows the backoff */

struct slot {
	pid_t	 pid;		/* 0: empty */
	int64_t	 started_ms;
	int64_t	 respawn_at_ms;	/* when empty: start a worker at this time */
	int64_t	 backoff_ms;
	bool	 retiring;	/* asked to stop during a reload */
};

struct master {
	char		 self[PATH_MAX];
	int		 nworkers;
	int64_t		 shutdown_timeout;
	struct slot	 slots[MAX_WORKERS];
	bool		 stop_requested;	/* SIGTERM seen during a reload */
	struct fin_config *cfg;
};

static void
usage(void)
{
	fprintf(stderr, "usage: finance-fcgi [--workers N] [--describe-config]\n"
	    "Run under spawn-fcgi, which passes the listening socket on fd 0:\n"
	    "  spawn-fcgi -n -s /run/finance/finance.sock -- finance-fcgi --workers 4\n");
}

static pid_t
spawn(struct master *m, struct slot *s)
{
	sigset_t	 none;
	pid_t		 pid;

	pid = fork();
	if (pid < 0) {
		fin_log(FIN_LOG_ERROR, "worker_spawn", "could not fork a worker: %s",
		    strerror(errno));
		return -1;
	}
	if (pid == 0) {
		char *argv[] = { m->self, "--worker", NULL };

		/* A worker must not outlive its master. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(m->self, argv);
		fin_log(FIN_LOG_ERROR, "worker_spawn", "could not exec %s: %s",
		    m->self, strerror(errno));
		_exit(127);
	}
	s->pid = pid;
	s->started_ms = fin_now_ms();
	s->retiring = false;
	return pid;
}

static struct slot *
find_slot(struct master *m, pid_t pid)
{
	int	 i;

	for (i = 0; i < MAX_WORKERS; i++)
		if (m->slots[i].pid == pid)
			return &m->slots[i];
	return NULL;
}

static void
log_exit(pid_t pid, int status, bool expected)
{
	if (WIFSIGNALED(status))
		fin_log(expected ? FIN_LOG_INFO : FIN_LOG_ERROR, "worker_died",
		    "worker %d killed by signal %d", (int)pid, WTERMSIG(status));
	else
		fin_log(expected ? FIN_LOG_INFO : FIN_LOG_WARN, "worker_exited",
		    "worker %d exited with status %d", (int)pid,
		    WEXITSTATUS(status));
}

/*
 * A worker died on its own: count it and, with a DSN, report it with the
 * request it was serving (read from its slot in the shared region).
 */
static void
report_death(struct master *m, pid_t pid, int status)
{
	struct fin_sentry_event ev;
	char		 rid[65], route[64], msg[160];
	bool		 busy;

	fin_metric_inc(FIN_M_WORKER_RESTARTS);
	busy = fin_metrics_crash_record((int)pid, rid, route);
	if (m->cfg->sentry_dsn[0] == '\0')
		return;
	/* A sanitizer turns a crash into exit(1): report exits as well. */
	if (WIFSIGNALED(status))
		snprintf(msg, sizeof(msg), "worker %d killed by signal %d (%s)%s",
		    (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)),
		    busy ? " while serving a request" : "");
	else
		snprintf(msg, sizeof(msg), "worker %d exited with status %d%s",
		    (int)pid, WEXITSTATUS(status),
		    busy ? " while serving a request" : "");
	ev.level = "fatal";
	ev.message = msg;
	ev.route = busy ? route : NULL;
	ev.request_id = busy ? rid : NULL;
	ev.user_id = NULL;
	if (fin_sentry_capture(m->cfg, &ev) != FIN_OK)
		fin_log(FIN_LOG_WARN, "sentry", "crash report not sent");
}

/* Reaps every dead child; unexpected deaths are scheduled for respawn. */
static void
reap(struct master *m, bool stopping)
{
	struct slot	*s;
	pid_t		 pid;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		s = find_slot(m, pid);
		if (s == NULL)
			continue;
		log_exit(pid, status, stopping || s->retiring);
		s->pid = 0;
		if (stopping || s->retiring) {
			char rid[65], route[64];

			(void)fin_metrics_crash_record((int)pid, rid, route);
			s->respawn_at_ms = -1;
			continue;
		}
		report_death(m, pid, status);
		if (fin_now_ms() - s->started_ms < QUICK_DEATH_MS)
			s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
		else
			s->backoff_ms = 0;
		if (s->backoff_ms > BACKOFF_MAX_MS)
			s->backoff_ms = BACKOFF_MAX_MS;
		s->respawn_at_ms = fin_now_ms() + s->backoff_ms;
	}
}

static void
respawn_due(struct master *m)
{
	int	 i;

	for (i = 0; i < m->nworkers; i++) {
		struct slot *s = &m->slots[i];

		if (s->pid == 0 && s->respawn_at_ms >= 0 &&
		    fin_now_ms() >= s->respawn_at_ms)
			(void)spawn(m, s);
	}
}

/* Waits up to ms for a signal in set; returns it, or 0 on timeout. */
static int
wait_signal(const sigset_t *set, int64_t ms)
{
	struct timespec	 ts;
	int		 sig;

	if (ms < 0)
		ms = 0;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	sig = sigtimedwait(set, NULL, &ts);
	return sig < 0 ? 0 : sig;
}

static int
alive(const struct master *m)
{
	int	 i, n = 0;

	for (i = 0; i < MAX_WORKERS; i++)
		if (m->slots[i].pid != 0)
			n++;
	return n;
}

/* Asks every worker to stop, waits, then kills what is left. */
static void
stop_all(struct master *m, const sigset_t *set)
{
	int64_t	 deadline;
	int	 i;

	for (i = 0; i < MAX_WORKERS; i++)
		if (m->slots[i].pid != 0)
			kill(m->slots[i].pid, SIGTERM);
	deadline = fin_now_ms() + m->shutdown_timeout * 1000;
	reap(m, true);
	while (alive(m) > 0 && fin_now_ms() < deadline) {
		(void)wait_signal(set, 100);
		reap(m, true);
	}
	for (i = 0; i < MAX_WORKERS; i++)
		if (m->slots[i].pid != 0) {
			fin_log(FIN_LOG_WARN, "worker_killed", "worker %d did not "
			    "stop in %llds: killing it", (int)m->slots[i].pid,
			    (long long)m->shutdown_timeout);
			kill(m->slots[i].pid, SIGKILL);
		}
	while (alive(m) > 0 && waitpid(-1, NULL, 0) > 0)
		reap(m, true);
}

/*
 * Replaces the workers one at a time: start the new one in a spare slot,
 * then ask the old one to finish and wait for it, so that the number of
 * workers accepting never drops below N.
 */
static void
reload(struct master *m, const sigset_t *set)
{
	struct slot	*old, *fresh;
	int		 i;
	int64_t		 deadline;

	fin_log(FIN_LOG_INFO, "reload", "replacing %d workers", m->nworkers);
	for (i = 0; i < m->nworkers; i++) {
		old = &m->slots[i];
		fresh = &m->slots[m->nworkers];	/* the spare slot */
		if (spawn(m, fresh) < 0)
			return;
		if (old->pid != 0) {
			old->retiring = true;
			kill(old->pid, SIGTERM);
			deadline = fin_now_ms() + m->shutdown_timeout * 1000;
			while (old->pid != 0 && fin_now_ms() < deadline) {
				int sig = wait_signal(set, 100);

				if (sig == SIGTERM || sig == SIGINT)
					m->stop_requested = true;
				reap(m, false);
			}
			if (old->pid != 0) {
				kill(old->pid, SIGKILL);
				while (old->pid != 0 && waitpid(old->pid, NULL, 0) > 0)
					old->pid = 0;
			}
		}
		*old = *fresh;
		old->retiring = false;
		old->backoff_ms = 0;
		memset(fresh, 0, sizeof(*fresh));
	}
}

static bool
fd0_is_socket(void)
{
	int		 type;
	socklen_t	 len = sizeof(type);

	return getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

int
main(int argc, char *argv[])
{
	struct master	 m;
	struct fin_config *cfg;
	sigset_t	 set;
	char		 why[256];
	ssize_t		 n;
	int		 i, sig;
	int64_t		 workers = 0;

	if (argc == 2 && strcmp(argv[1], "--worker") == 0)
		return worker_main(0);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
			if (!fin_parse_int64(argv[++i], 1, MAX_WORKERS - 1, &workers)) {
				fprintf(stderr, "finance-fcgi: --workers takes 1 to %d\n",
				    MAX_WORKERS - 1);
				return 2;
			}
		} else if (strcmp(argv[i], "--describe-config") == 0) {
			fin_config_describe(stdout);
			return 0;
		} else {
			usage();
			return 2;
		}
	}

	cfg = fin_config_load(true, why, sizeof(why));
	if (cfg == NULL) {
		fprintf(stderr, "finance-fcgi: %s\n", why);
		return 1;
	}
	fin_log_init(cfg->log_level, "master");
	if (!fd0_is_socket()) {
		fprintf(stderr, "finance-fcgi: fd 0 is not a socket: start it "
		    "with spawn-fcgi\n");
		usage();
		return 1;
	}

	memset(&m, 0, sizeof(m));
	m.nworkers = workers > 0 ? (int)workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (m.nworkers < 1)
		m.nworkers = 1;
	if (m.nworkers > MAX_WORKERS - 1)
		m.nworkers = MAX_WORKERS - 1;
	m.shutdown_timeout = cfg->shutdown_timeout;
	m.cfg = cfg;		/* kept for the master's life: Sentry reports */
	n = readlink("/proc/self/exe", m.self, sizeof(m.self) - 1);
	if (n <= 0) {
		fprintf(stderr, "finance-fcgi: could not find own executable\n");
		return 1;
	}
	m.self[n] = '\0';

	/* Signals are taken synchronously with sigtimedwait: no handlers. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Shared counters: workers find the fd in their environment. */
	i = fin_metrics_create();
	if (i < 0)
		fin_log(FIN_LOG_WARN, "metrics", "could not create the metrics "
		    "region: %s", strerror(errno));
	else {
		char fd[16];

		snprintf(fd, sizeof(fd), "%d", i);
		setenv("FINANCE_METRICS_FD", fd, 1);
	}
	fin_log(FIN_LOG_INFO, "master_start", "starting %d workers", m.nworkers);
	for (i = 0; i < m.nworkers; i++)
		(void)spawn(&m, &m.slots[i]);
	for (i = m.nworkers; i < MAX_WORKERS; i++)
		m.slots[i].respawn_at_ms = -1;

	for (;;) {
		sig = m.stop_requested ? SIGTERM : wait_signal(&set, 100);
		if (sig == SIGTERM || sig == SIGINT) {
			fin_log(FIN_LOG_INFO, "master_stop", "stopping: waiting for "
			    "requests in flight");
			stop_all(&m, &set);
			fin_log(FIN_LOG_INFO, "master_exit", "all workers stopped");
			fin_config_free(m.cfg);
			return 0;
		}
		if (sig == SIGHUP) {
			reload(&m, &set);
			continue;
		}
		reap(&m, false);
		respawn_due(&m);
	}
}
