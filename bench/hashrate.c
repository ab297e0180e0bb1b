/*
 * bench/hashrate: the raw argon2id rate of this machine, the ceiling of
 * POST /auth/login.  Hashes one password with crypto_pwhash_str() at the
 * given limits, then THREADS threads each run crypto_pwhash_str_verify()
 * on it (what a login costs: one argon2id computation) until SECONDS are
 * up, and prints one parseable line:
 *
 *   HASHRATE threads=2 seconds=5.01 hashes=98 rate=19.56 opslimit=2 memlimit=67108864
 *
 * Usage: hashrate [THREADS [SECONDS [OPSLIMIT [MEMLIMIT]]]]
 * (defaults 2, 5, libsodium's interactive limits: 2 and 64 MiB).
 * Built by bench/run: cc -O2 hashrate.c $(pkg-config --cflags --libs libsodium) -lpthread
 */
#define _POSIX_C_SOURCE 200809L	/* clock_gettime */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define MAX_THREADS	64

static const char	 password[] = "correct horse battery staple 2026";
static char		 hash[crypto_pwhash_STRBYTES];
static double		 deadline;

struct worker {
	pthread_t	 tid;
	unsigned long	 hashes;
	int		 failed;
};

static double
now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
run(void *arg)
{
	struct worker	*w = arg;

	/* Bounded by the clock; each verify is one full argon2id. */
	while (now() < deadline) {
		if (crypto_pwhash_str_verify(hash, password,
		    sizeof(password) - 1) != 0) {
			w->failed = 1;
			break;
		}
		w->hashes++;
	}
	return NULL;
}

static unsigned long long
arg_num(const char *s, unsigned long long min, unsigned long long max,
    const char *what)
{
	char			*end;
	unsigned long long	 v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "hashrate: %s must be a number from %llu to "
		    "%llu\n", what, min, max);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	struct worker		 w[MAX_THREADS];
	unsigned long long	 ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
	size_t			 mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
	unsigned long		 total = 0;
	double			 secs = 5, start, elapsed;
	int			 threads = 2, i, failed = 0;

	if (argc > 1)
		threads = (int)arg_num(argv[1], 1, MAX_THREADS, "THREADS");
	if (argc > 2)
		secs = (double)arg_num(argv[2], 1, 600, "SECONDS");
	if (argc > 3)
		ops = arg_num(argv[3], crypto_pwhash_OPSLIMIT_MIN, 20, "OPSLIMIT");
	if (argc > 4)
		mem = (size_t)arg_num(argv[4], crypto_pwhash_MEMLIMIT_MIN,
		    1073741824ULL, "MEMLIMIT");
	if (sodium_init() < 0) {
		fprintf(stderr, "hashrate: sodium_init failed\n");
		return 1;
	}
	if (crypto_pwhash_str(hash, password, sizeof(password) - 1, ops,
	    mem) != 0) {
		fprintf(stderr, "hashrate: crypto_pwhash_str failed (out of "
		    "memory?)\n");
		return 1;
	}
	memset(w, 0, sizeof(w));
	start = now();
	deadline = start + secs;
	for (i = 0; i < threads; i++)
		if (pthread_create(&w[i].tid, NULL, run, &w[i]) != 0) {
			fprintf(stderr, "hashrate: pthread_create failed\n");
			return 1;
		}
	for (i = 0; i < threads; i++) {
		pthread_join(w[i].tid, NULL);
		total += w[i].hashes;
		failed |= w[i].failed;
	}
	elapsed = now() - start;
	if (failed) {
		fprintf(stderr, "hashrate: crypto_pwhash_str_verify failed\n");
		return 1;
	}
	printf("HASHRATE threads=%d seconds=%.2f hashes=%lu rate=%.2f "
	    "opslimit=%llu memlimit=%zu\n", threads, elapsed, total,
	    (double)total / elapsed, ops, mem);
	return 0;
}
