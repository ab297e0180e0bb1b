/*
 * finance-fcgi: the prefork master.  spawn-fcgi hands it the listening
 * socket on fd 0; it starts N workers (each a fresh exec of this binary,
 * so that a reload picks up a new binary and a new env file), respawns any
 * that die with a backoff, and handles the signals of a service:
 *
 *   SIGTERM, SIGINT  graceful stop: workers finish the request in hand
 *                    (at most SHUTDOWN_TIMEOUT seconds) and the master
 *                    exits 0;
 *   SIGHUP           reload: the master reads the config again and, if it
 *                    is valid, takes its own settings from it and replaces
 *                    the workers one at a time; an old worker is asked to
 *                    leave only once its replacement says it is up, so the
 *                    socket always has a worker and no request fails.  An
 *                    invalid config, or a new worker that dies starting,
 *                    leaves the running workers in place.
 *
 * The env file is read by the master alone, at start and on SIGHUP, into
 * a sealed copy in memory that every worker it starts reads instead (see
 * config_take()).
 */
#include "app.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS		64
#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		5000
#define QUICK_DEATH_MS		1000	/* dying sooner than this grows the backoff */
#define READY_SLACK_MS		5000	/* exec, config, libfcgi: beyond the connects */
#define READY_POLL_MS		50
#define ENV_COPY_MAX		(1024 * 1024)	/* past any env file config.c reads */

struct slot {
	pid_t	 pid;		/* 0: empty */
	int64_t	 started_ms;
	int64_t	 respawn_at_ms;	/* when empty: start a worker at this time */
	int64_t	 backoff_ms;
	bool	 retiring;	/* asked to stop during a reload */
};

struct master {
	char		 self[PATH_MAX];
	pid_t		 pid;		/* ours, for the workers' getppid() check */
	int		 nworkers;
	struct slot	 slots[MAX_WORKERS];
	bool		 stop_requested;	/* SIGTERM seen during a reload */
	bool		 reload_requested;	/* SIGHUP seen during a reload */
	struct fin_config *cfg;		/* the master's settings; a reload swaps it */
	char		 env_named[PATH_MAX];	/* FINANCE_ENV_FILE as started; "": ./.env */
	int		 env_fd;	/* the copy of it that cfg came from */
};

static void
usage(void)
{
	fprintf(stderr, "usage: finance-fcgi [--workers N] [--describe-config]\n"
	    "Run under spawn-fcgi, which passes the listening socket on fd 0:\n"
	    "  spawn-fcgi -n -s /run/finance/finance.sock -- finance-fcgi --workers 4\n");
}

/*
 * Starts a worker in slot s and returns its pid, or -1 (logged).  With
 * ready not NULL the worker also gets the write end of a pipe, named in
 * FINANCE_READY_FD, on which it writes one byte once it is up; *ready is
 * then the read end, which the caller owns and closes.
 */
static pid_t
spawn(struct master *m, struct slot *s, int *ready)
{
	sigset_t	 none;
	pid_t		 pid;
	int		 p[2] = { -1, -1 };

	/* Close-on-exec: only the child's own copy of the write end is kept. */
	if (ready != NULL && pipe2(p, O_CLOEXEC) < 0) {
		fin_log(FIN_LOG_ERROR, "worker_spawn", "could not make a pipe "
		    "for a worker: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fin_log(FIN_LOG_ERROR, "worker_spawn", "could not fork a worker: %s",
		    strerror(errno));
		if (ready != NULL) {
			close(p[0]);
			close(p[1]);
		}
		return -1;
	}
	if (pid == 0) {
		char *argv[] = { m->self, "--worker", NULL };
		char fd[16];

		/*
		 * A worker must not outlive its master.  The master may have
		 * died between fork() and prctl(): then no signal will come,
		 * and the parent is no longer the master.
		 */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != m->pid)
			_exit(1);
		if (ready != NULL) {
			snprintf(fd, sizeof(fd), "%d", p[1]);
			if (fcntl(p[1], F_SETFD, 0) < 0 ||
			    setenv("FINANCE_READY_FD", fd, 1) < 0)
				_exit(127);
		} else
			(void)unsetenv("FINANCE_READY_FD");
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(m->self, argv);
		fin_log(FIN_LOG_ERROR, "worker_spawn", "could not exec %s: %s",
		    m->self, strerror(errno));
		_exit(127);
	}
	if (ready != NULL) {
		close(p[1]);
		*ready = p[0];
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
			(void)spawn(m, s, NULL);
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

/*
 * Kills a worker that would not stop (or start) and reaps it the way
 * reap() does an expected exit: logged, its crash-record slot freed.
 */
static void
kill_worker(struct slot *s)
{
	char	 rid[65], route[64];
	pid_t	 pid = s->pid;
	int	 status;

	kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) == pid)
		log_exit(pid, status, true);
	(void)fin_metrics_crash_record((int)pid, rid, route);
	s->pid = 0;
	s->respawn_at_ms = -1;
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
	deadline = fin_now_ms() + m->cfg->shutdown_timeout * 1000;
	reap(m, true);
	while (alive(m) > 0 && fin_now_ms() < deadline) {
		(void)wait_signal(set, 100);
		reap(m, true);
	}
	for (i = 0; i < MAX_WORKERS; i++)
		if (m->slots[i].pid != 0) {
			fin_log(FIN_LOG_WARN, "worker_killed", "worker %d did not "
			    "stop in %llds: killing it", (int)m->slots[i].pid,
			    (long long)m->cfg->shutdown_timeout);
			kill(m->slots[i].pid, SIGKILL);
		}
	while (alive(m) > 0 && waitpid(-1, NULL, 0) > 0)
		reap(m, true);
}

/*
 * What a reload does with the signals that come while it waits: a stop
 * or another reload is noted for the reload and the main loop to act on
 * (a second SIGHUP means another full reload once this one ends, since
 * the config may have changed again after some workers read it), and a
 * worker that died is reaped and respawned as usual.
 */
static void
take_signal(struct master *m, const sigset_t *set, int64_t ms)
{
	int	 sig;

	sig = wait_signal(set, ms);
	if (sig == SIGTERM || sig == SIGINT)
		m->stop_requested = true;
	else if (sig == SIGHUP && !m->reload_requested) {
		m->reload_requested = true;
		fin_log(FIN_LOG_INFO, "reload", "SIGHUP during a reload: "
		    "reloading again once this one ends");
	}
	reap(m, false);
	respawn_due(m);
}

/*
 * Waits until the worker just started in s writes its byte on ready (it
 * has its config and has tried its connections), for at most as long as
 * a start-up may take.  Returns true when it is up.  False when it died,
 * was too slow (then it is killed and reaped here) or a stop was
 * requested (then it is left running for stop_all()).
 */
static bool
await_ready(struct master *m, struct slot *s, int ready,
    const sigset_t *set)
{
	struct pollfd	 pfd = { .fd = ready, .events = POLLIN };
	int64_t		 deadline;
	ssize_t		 n;
	bool		 eof = false;
	char		 c;

	deadline = fin_now_ms() + m->cfg->db_connect_timeout * 1000 +
	    2 * m->cfg->redis_timeout_ms + READY_SLACK_MS;
	for (;;) {
		/* After EOF, only its SIGCHLD is awaited: reap() reports it. */
		take_signal(m, set, eof ? READY_POLL_MS : 0);
		if (m->stop_requested || s->pid == 0)
			return false;
		if (!eof && poll(&pfd, 1, READY_POLL_MS) > 0) {
			n = read(ready, &c, 1);
			if (n == 1)
				return true;
			/* It is exiting, or closed the pipe without a word. */
			if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				eof = true;
				if (deadline > fin_now_ms() + QUICK_DEATH_MS)
					deadline = fin_now_ms() + QUICK_DEATH_MS;
			}
		}
		if (fin_now_ms() >= deadline) {
			fin_log(FIN_LOG_ERROR, "worker_start", "worker %d not "
			    "up after %lld ms: killing it", (int)s->pid,
			    (long long)(fin_now_ms() - s->started_ms));
			kill_worker(s);
			return false;
		}
	}
}

/*
 * Copies the env file at path (NULL: none, an empty copy) into a sealed
 * memfd that workers inherit.  Returns the fd, or -1 with why set.
 */
static int
env_copy(const char *path, char *why, size_t whysz)
{
	char		 buf[8192];
	ssize_t		 n;
	size_t		 total = 0;
	int		 in = -1, fd;

	fd = memfd_create("finance-env", MFD_ALLOW_SEALING);
	if (fd < 0) {
		snprintf(why, whysz, "could not copy the env file: %s",
		    strerror(errno));
		return -1;
	}
	if (path != NULL && (in = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(why, whysz, "could not open env file %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	while (in >= 0 && (n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (total += (size_t)n) > ENV_COPY_MAX ||
		    write(fd, buf, (size_t)n) != n) {
			snprintf(why, whysz, "could not copy env file %s: %s",
			    path, n < 0 ? strerror(errno) : total > ENV_COPY_MAX ?
			    "larger than 1 MiB" : "short write");
			goto fail;
		}
	}
	if (in >= 0)
		close(in);
	explicit_bzero(buf, sizeof(buf));
	/* Nobody, not a worker either, can change it afterwards. */
	(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_WRITE | F_SEAL_SEAL);
	return fd;
fail:
	if (in >= 0)
		close(in);
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return -1;
}

/*
 * Reads the config, at start and for each reload: the env file the master
 * was started with is copied, the config read from the copy, and when it
 * is valid the copy becomes the one new workers read (FINANCE_ENV_FILE
 * names it in /proc/self/fd, theirs by inheritance).  So a worker that is
 * respawned runs with the config the master accepted, never with an edit
 * no SIGHUP has applied yet -- an invalid file, or a rotated JWT_SECRET on
 * one worker of N.  Returns NULL with why set when it is not valid.
 */
static struct fin_config *
config_take(struct master *m, char *why, size_t whysz)
{
	struct fin_config *cfg;
	const char	*path;
	char		 copy[32];
	int		 fd;

	path = m->env_named[0] != '\0' ? m->env_named :
	    access(".env", R_OK) == 0 ? ".env" : NULL;
	if ((fd = env_copy(path, why, whysz)) < 0)
		return NULL;
	snprintf(copy, sizeof(copy), "/proc/self/fd/%d", fd);
	cfg = fin_config_load_from(copy, path, true, why, whysz);
	if (cfg != NULL && setenv("FINANCE_ENV_FILE", copy, 1) != 0) {
		snprintf(why, whysz, "out of memory");
		fin_config_free(cfg);
		cfg = NULL;
	}
	if (cfg == NULL) {
		close(fd);
		return NULL;
	}
	if (m->env_fd >= 0)
		close(m->env_fd);
	m->env_fd = fd;
	return cfg;
}

/*
 * Reads the config again for a reload.  An invalid one is refused with
 * the reason logged and nothing changes.  A valid one becomes the
 * master's own (shutdown timeout, Sentry, log level) before any worker
 * is replaced, and the workers started from now on read it too.
 */
static bool
reload_config(struct master *m)
{
	struct fin_config *cfg;
	char		 why[256];

	cfg = config_take(m, why, sizeof(why));
	if (cfg == NULL) {
		fin_log(FIN_LOG_ERROR, "reload_refused", "could not reload the "
		    "config: %s; the workers keep running with the one they "
		    "have", why);
		return false;
	}
	fin_config_free(m->cfg);
	m->cfg = cfg;
	fin_log_init(cfg->log_level, "master");
	return true;
}

/*
 * Replaces the workers one at a time: start the new one in a spare slot
 * and wait until it is up, then ask the old one to finish and wait for
 * it, so that the number of workers accepting never drops below N.  A
 * new worker that does not come up ends the reload: the old workers that
 * are left keep serving.  A stop request ends it at once, leaving every
 * worker (the spare one too) to stop_all().
 */
static void
reload(struct master *m, const sigset_t *set)
{
	struct slot	*old, *fresh;
	int		 i, ready;
	bool		 up;
	int64_t		 deadline;

	if (!reload_config(m))
		return;
	fin_log(FIN_LOG_INFO, "reload", "replacing %d workers", m->nworkers);
	fresh = &m->slots[m->nworkers];	/* the spare slot */
	for (i = 0; i < m->nworkers; i++) {
		old = &m->slots[i];
		up = false;
		if (spawn(m, fresh, &ready) > 0) {
			up = await_ready(m, fresh, ready, set);
			close(ready);
		}
		if (m->stop_requested)
			return;
		if (!up) {
			fin_log(FIN_LOG_ERROR, "reload_failed", "a new worker "
			    "did not start: stopping the reload with %d of %d "
			    "workers replaced, the others keep running", i,
			    m->nworkers);
			memset(fresh, 0, sizeof(*fresh));
			fresh->respawn_at_ms = -1;
			return;
		}
		if (old->pid != 0) {
			old->retiring = true;
			kill(old->pid, SIGTERM);
			deadline = fin_now_ms() + m->cfg->shutdown_timeout * 1000;
			while (old->pid != 0 && fin_now_ms() < deadline) {
				take_signal(m, set, 100);
				if (m->stop_requested)
					return;
			}
			if (old->pid != 0) {
				fin_log(FIN_LOG_WARN, "worker_killed", "worker %d "
				    "did not stop in %llds: killing it",
				    (int)old->pid,
				    (long long)m->cfg->shutdown_timeout);
				kill_worker(old);
			}
		}
		*old = *fresh;
		old->retiring = false;
		old->backoff_ms = 0;
		memset(fresh, 0, sizeof(*fresh));
		fresh->respawn_at_ms = -1;
	}
	fin_log(FIN_LOG_INFO, "reload_done", "replaced %d workers",
	    m->nworkers);
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

	memset(&m, 0, sizeof(m));
	m.env_fd = -1;
	if (getenv("FINANCE_ENV_FILE") != NULL)
		snprintf(m.env_named, sizeof(m.env_named), "%s",
		    getenv("FINANCE_ENV_FILE"));
	cfg = config_take(&m, why, sizeof(why));
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

	m.nworkers = workers > 0 ? (int)workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (m.nworkers < 1)
		m.nworkers = 1;
	if (m.nworkers > MAX_WORKERS - 1)
		m.nworkers = MAX_WORKERS - 1;
	m.cfg = cfg;
	m.pid = getpid();
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
		(void)spawn(&m, &m.slots[i], NULL);
	for (i = m.nworkers; i < MAX_WORKERS; i++)
		m.slots[i].respawn_at_ms = -1;

	for (;;) {
		if (m.stop_requested)
			sig = SIGTERM;
		else if (m.reload_requested)
			sig = SIGHUP;
		else
			sig = wait_signal(&set, 100);
		if (sig == SIGTERM || sig == SIGINT) {
			fin_log(FIN_LOG_INFO, "master_stop", "stopping: waiting for "
			    "requests in flight");
			stop_all(&m, &set);
			fin_log(FIN_LOG_INFO, "master_exit", "all workers stopped");
			fin_config_free(m.cfg);
			return 0;
		}
		if (sig == SIGHUP) {
			m.reload_requested = false;
			reload(&m, &set);
			continue;
		}
		reap(&m, false);
		respawn_due(&m);
	}
}
