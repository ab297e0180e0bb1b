/*
 * The PostgreSQL layer against a real server (tests/harness/with-services):
 * parameters stay data, unique violations are recognised by SQLSTATE, a
 * killed connection is reopened without the caller noticing, and
 * migrations are idempotent and safe to run concurrently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "unit.h"

static const struct fin_stmt stmt_echo = {
	"test_echo", "SELECT $1::text AS v", 1 };
static const struct fin_stmt stmt_ts = {
	"test_ts", "SELECT $1::timestamptz, $1::timestamptz::date", 1 };
static const struct fin_stmt stmt_sleep = {
	"test_sleep", "SELECT pg_sleep($1::float8)::text", 1 };
static const struct fin_stmt stmt_pid = {
	"test_pid", "SELECT pg_backend_pid()::text", 0 };
static const struct fin_stmt stmt_kill = {
	"test_kill", "SELECT pg_terminate_backend($1::int)", 1 };
static const struct fin_stmt stmt_tmp_insert = {
	"test_tmp_insert", "INSERT INTO test_unique (k) VALUES ($1)", 1 };
static const struct fin_stmt stmt_tmp_count = {
	"test_tmp_count", "SELECT count(*)::text FROM test_unique", 0 };
static const struct fin_stmt stmt_aborted_insert = {
	"test_aborted_insert", "INSERT INTO test_aborted (k) VALUES ($1)", 1 };
static const struct fin_stmt stmt_aborted_count = {
	"test_aborted_count", "SELECT count(*)::text FROM test_aborted", 0 };

static struct fin_config *cfg;

static void
setup(void)
{
	char	 why[256];

	FIN_REQUIRE_ENV("DATABASE_URL");
	cfg = fin_config_load(false, why, sizeof(why));
	ck_assert_msg(cfg != NULL, "%s", why);
}

static void
teardown(void)
{
	fin_config_free(cfg);
}

/* What PostgreSQL writes in the session Fin_db_connect sets up. */
START_TEST(test_db_timestamps_in_api_form)
{
	static const struct {
		const char	*in, *want, *want_us;
	} t[] = {
		{ "2026-11-25 03:00:56+00", "2026-11-25T03:00:56Z",
		    "2026-11-25T03:00:56.000000Z" },
		{ "2026-11-25 03:00:56.5+00", "2026-11-25T03:00:56Z",
		    "2026-11-25T03:00:56.500000Z" },
		{ "2026-11-25 03:00:56.123456+00", "2026-11-25T03:00:56Z",
		    "2026-11-25T03:00:56.123456Z" },
		/* Anything else is refused, never passed on half-converted. */
		{ "2026-11-25 03:00:56+01", NULL, NULL },
		{ "2026-11-25T03:00:56Z", NULL, NULL },
		{ "2026-11-25 03:00:56", NULL, NULL },
		{ "11/25/2026 03:00:56 UTC", NULL, NULL },
		{ "2026-11-25 03:00", NULL, NULL },
		{ "", NULL, NULL },
	};
	struct fin_ctx	*ctx;
	const char	*p[1] = { "2026-11-25 04:00:56.25+01" };
	char		 out[FIN_TS_API_MAX];
	PGresult	*res;
	size_t		 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ck_assert_msg(Fin_db_ts_api(t[i].in, false, out, sizeof(out)) ==
		    (t[i].want != NULL), "%s", t[i].in);
		if (t[i].want != NULL)
			ck_assert_str_eq(out, t[i].want);
		ck_assert(Fin_db_ts_api(t[i].in, true, out, sizeof(out)) ==
		    (t[i].want_us != NULL));
		if (t[i].want_us != NULL)
			ck_assert_str_eq(out, t[i].want_us);
	}
	ck_assert(!Fin_db_ts_api(t[2].in, true, out, 20));
	/* The session writes UTC in ISO form, whatever the defaults say. */
	setenv("PGTZ", "America/New_York", 1);
	setenv("PGDATESTYLE", "SQL, DMY", 1);
	ctx = fin_ctx_new(cfg);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_ts, p, &res), FIN_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "2026-11-25");
	ck_assert(Fin_db_ts_api(PQgetvalue(res, 0, 0), true, out, sizeof(out)));
	ck_assert_str_eq(out, "2026-11-25T03:00:56.250000Z");
	PQclear(res);
	fin_ctx_free(ctx);
	unsetenv("PGTZ");
	unsetenv("PGDATESTYLE");
}
END_TEST

START_TEST(test_db_parameters_are_data)
{
	struct fin_ctx	*ctx = fin_ctx_new(cfg);
	const char	*p[1] = { "x'); DROP TABLE users; --" };
	PGresult	*res;

	ck_assert_int_eq(fin_db_ping(ctx), FIN_OK);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_echo, p, &res), FIN_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), p[0]);
	PQclear(res);
	p[0] = NULL;
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_echo, p, &res), FIN_OK);
	ck_assert(PQgetisnull(res, 0, 0));
	PQclear(res);
	fin_ctx_free(ctx);
}
END_TEST

START_TEST(test_db_unique_violation_and_rollback)
{
	struct fin_ctx	*ctx = fin_ctx_new(cfg);
	const char	*p[1] = { "k1" };
	PGresult	*res;

	ck_assert_int_eq(Fin_db_exec_script(ctx,
	    "DROP TABLE IF EXISTS test_unique; "
	    "CREATE TABLE test_unique (k text PRIMARY KEY)"), FIN_OK);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_tmp_insert, p, &res), FIN_OK);
	PQclear(res);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_tmp_insert, p, &res),
	    FIN_E_INTERNAL_ERROR);
	ck_assert_ptr_null(res);
	ck_assert(Fin_db_unique_violation(ctx));

	/* Work inside a rolled-back transaction leaves nothing. */
	ck_assert_int_eq(fin_db_begin(ctx), FIN_OK);
	p[0] = "k2";
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_tmp_insert, p, &res), FIN_OK);
	PQclear(res);
	fin_db_rollback(ctx);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_tmp_count, NULL, &res), FIN_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "1");
	PQclear(res);
	ck_assert_int_eq(fin_db_begin(ctx), FIN_OK);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_tmp_insert, p, &res), FIN_OK);
	PQclear(res);
	ck_assert_int_eq(fin_db_commit(ctx), FIN_OK);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_tmp_count, NULL, &res), FIN_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "2");
	PQclear(res);
	fin_ctx_free(ctx);
}
END_TEST

/*
 * A transaction an error aborted cannot commit: PostgreSQL answers its
 * COMMIT with "ROLLBACK" and no error, which must not read as committed.
 * The connection is left out of any transaction.
 */
START_TEST(test_db_commit_of_aborted_transaction_fails)
{
	struct fin_ctx	*ctx = fin_ctx_new(cfg);
	const char	*p[1] = { "a1" };
	PGresult	*res;

	ck_assert_int_eq(Fin_db_exec_script(ctx,
	    "DROP TABLE IF EXISTS test_aborted; "
	    "CREATE TABLE test_aborted (k text PRIMARY KEY)"), FIN_OK);
	ck_assert_int_eq(fin_db_begin(ctx), FIN_OK);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_aborted_insert, p, &res), FIN_OK);
	PQclear(res);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_aborted_insert, p, &res),
	    FIN_E_INTERNAL_ERROR);
	ck_assert_int_ne(fin_db_commit(ctx), FIN_OK);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_aborted_count, NULL, &res),
	    FIN_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "0");
	PQclear(res);
	ck_assert_int_eq(fin_db_begin(ctx), FIN_OK);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_aborted_insert, p, &res), FIN_OK);
	PQclear(res);
	ck_assert_int_eq(fin_db_commit(ctx), FIN_OK);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_aborted_count, NULL, &res),
	    FIN_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "1");
	PQclear(res);
	fin_ctx_free(ctx);
}
END_TEST

/* Terminates victim's backend from killer's; its pid into pid. */
static void
kill_backend(struct fin_ctx *victim, struct fin_ctx *killer, char pid[32])
{
	const char	*p[1];
	PGresult	*res;

	ck_assert_int_eq(Fin_db_exec(victim, &stmt_pid, NULL, &res), FIN_OK);
	snprintf(pid, 32, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	p[0] = pid;
	ck_assert_int_eq(Fin_db_exec(killer, &stmt_kill, p, &res), FIN_OK);
	PQclear(res);
}

START_TEST(test_db_reconnects_after_backend_killed)
{
	struct fin_ctx	*victim = fin_ctx_new(cfg), *killer = fin_ctx_new(cfg);
	const char	*p[1];
	char		 pid[32];
	PGresult	*res;

	kill_backend(victim, killer, pid);
	/* The next statement notices, reconnects, prepares again, succeeds. */
	p[0] = "after";
	ck_assert_int_eq(Fin_db_exec(victim, &stmt_echo, p, &res), FIN_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "after");
	PQclear(res);
	ck_assert_int_eq(Fin_db_exec(victim, &stmt_pid, NULL, &res), FIN_OK);
	ck_assert_str_ne(PQgetvalue(res, 0, 0), pid);
	PQclear(res);
	fin_ctx_free(victim);
	fin_ctx_free(killer);
}
END_TEST

/* A write that may have committed is never sent a second time. */
START_TEST(test_db_exec_once_is_not_resent)
{
	struct fin_ctx	*victim = fin_ctx_new(cfg), *killer = fin_ctx_new(cfg);
	const char	*p[1];
	char		 pid[32];
	PGresult	*res;

	kill_backend(victim, killer, pid);
	p[0] = "once";
	ck_assert_int_eq(Fin_db_exec_once(victim, &stmt_echo, p, &res),
	    FIN_E_SERVICE_UNAVAILABLE);
	ck_assert_ptr_null(res);
	/* The next one finds the connection gone and opens a new one first. */
	ck_assert_int_eq(Fin_db_exec_once(victim, &stmt_echo, p, &res), FIN_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "once");
	PQclear(res);
	fin_ctx_free(victim);
	fin_ctx_free(killer);
}
END_TEST

/* Too slow for statement_timeout: busy, not broken; the session lives on. */
START_TEST(test_db_statement_timeout_is_unavailable)
{
	struct fin_config *c;
	struct fin_ctx	*ctx;
	const char	*p[1] = { "5" };
	char		 why[256];
	PGresult	*res;

	setenv("DB_STATEMENT_TIMEOUT", "200", 1);
	c = fin_config_load(false, why, sizeof(why));
	unsetenv("DB_STATEMENT_TIMEOUT");
	ck_assert_msg(c != NULL, "%s", why);
	ctx = fin_ctx_new(c);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_sleep, p, &res),
	    FIN_E_SERVICE_UNAVAILABLE);
	ck_assert_str_eq(Fin_db_last_sqlstate(ctx), "57014");
	p[0] = "0";
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_sleep, p, &res), FIN_OK);
	PQclear(res);
	fin_ctx_free(ctx);
	fin_config_free(c);
}
END_TEST

/* pid of ctx's backend, and stops it: the server no longer answers ctx. */
static pid_t
silence_backend(struct fin_ctx *ctx)
{
	PGresult	*res;
	pid_t		 pid;

	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_pid, NULL, &res), FIN_OK);
	pid = (pid_t)atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	return pid;
}

/*
 * A server that answers nothing costs a statement its statement_timeout
 * and FIN_DB_ANSWER_SLACK_MS, then 503; the statement is not sent again,
 * in a transaction or not (it may still run); for FIN_DB_QUIET_MS the
 * next ones get 503 at once, then one opens a new connection and works
 * while the old backends are still stopped.
 */
START_TEST(test_db_silent_server_is_unavailable)
{
	struct fin_config *c;
	struct fin_ctx	*ctx;
	const char	*p[1] = { "silent" };
	char		 why[256];
	PGresult	*res;
	pid_t		 pid[2];
	int64_t		 ms[2], quiet_ms;
	enum fin_err	 e[2], quiet;
	int		 i;

	setenv("DB_STATEMENT_TIMEOUT", "100", 1);
	c = fin_config_load(false, why, sizeof(why));
	unsetenv("DB_STATEMENT_TIMEOUT");
	ck_assert_msg(c != NULL, "%s", why);
	ctx = fin_ctx_new(c);
	for (i = 0; i < 2; i++) {
		if (i == 1) {
			usleep(FIN_DB_QUIET_MS * 1000);
			ck_assert_int_eq(fin_db_begin(ctx), FIN_OK);
		}
		pid[i] = silence_backend(ctx);
		ms[i] = fin_now_ms();
		e[i] = Fin_db_exec(ctx, &stmt_echo, p, &res);
		ms[i] = fin_now_ms() - ms[i];
		fin_db_rollback(ctx);
		if (e[i] != FIN_OK)
			continue;
		PQclear(res);
	}
	/* Right after, 503 without waiting; then a new connection. */
	quiet_ms = fin_now_ms();
	quiet = Fin_db_exec(ctx, &stmt_echo, p, &res);
	quiet_ms = fin_now_ms() - quiet_ms;
	usleep(FIN_DB_QUIET_MS * 1000);
	ck_assert_int_eq(fin_db_ping(ctx), FIN_OK);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(kill(pid[i], SIGCONT), 0);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(e[i], FIN_E_SERVICE_UNAVAILABLE);
		ck_assert_int_ge(ms[i], 100 + FIN_DB_ANSWER_SLACK_MS);
		ck_assert_int_lt(ms[i], 2 * (100 + FIN_DB_ANSWER_SLACK_MS));
	}
	ck_assert_int_eq(quiet, FIN_E_SERVICE_UNAVAILABLE);
	ck_assert_int_lt(quiet_ms, FIN_DB_QUIET_MS);
	ck_assert_int_eq(Fin_db_exec(ctx, &stmt_echo, p, &res), FIN_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "silent");
	PQclear(res);
	fin_ctx_free(ctx);
	fin_config_free(c);
}
END_TEST

START_TEST(test_db_unreachable_is_unavailable)
{
	struct fin_config *c;
	struct fin_ctx	*ctx;
	char		 why[256];

	setenv("DATABASE_URL", "postgresql://127.0.0.1:1/none", 1);
	c = fin_config_load(false, why, sizeof(why));
	ck_assert_ptr_nonnull(c);
	ctx = fin_ctx_new(c);
	ck_assert_int_eq(fin_db_ping(ctx), FIN_E_SERVICE_UNAVAILABLE);
	ck_assert_int_eq(fin_db_begin(ctx), FIN_E_SERVICE_UNAVAILABLE);
	fin_ctx_free(ctx);
	fin_config_free(c);
}
END_TEST

static const char *
migrations_dir(void)
{
	static char	 dir[1024];
	const char	*top = getenv("top_srcdir");

	snprintf(dir, sizeof(dir), "%s/db/migrations", top != NULL ? top : ".");
	return dir;
}

/* Two processes migrate one empty database at once: both succeed. */
START_TEST(test_db_migrate_concurrent_and_idempotent)
{
	struct fin_ctx	*admin = fin_ctx_new(cfg), *ctx;
	struct fin_config *c;
	char		 url[1024], why[256], *buf = NULL;
	size_t		 len = 0;
	FILE		*out;
	pid_t		 kids[2];
	int		 i, status;

	ck_assert_int_eq(Fin_db_exec_script(admin,
	    "DROP DATABASE IF EXISTS finance_migrate_test"), FIN_OK);
	ck_assert_int_eq(Fin_db_exec_script(admin,
	    "CREATE DATABASE finance_migrate_test"), FIN_OK);
	snprintf(url, sizeof(url), "%s", getenv("DATABASE_URL"));
	/* Swap the database name: the URL ends in /<dbname>. */
	ck_assert_ptr_nonnull(strrchr(url, '/'));
	snprintf(strrchr(url, '/') + 1, sizeof(url) - (size_t)(strrchr(url, '/') +
	    1 - url), "finance_migrate_test");
	setenv("DATABASE_URL", url, 1);
	c = fin_config_load(false, why, sizeof(why));
	ck_assert_ptr_nonnull(c);

	for (i = 0; i < 2; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			struct fin_ctx *k = fin_ctx_new(c);
			FILE *devnull = fopen("/dev/null", "w");

			_exit(fin_migrate(k, migrations_dir(), false, devnull) ==
			    FIN_OK ? 0 : 1);
		}
	}
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ctx = fin_ctx_new(c);
	out = open_memstream(&buf, &len);
	ck_assert_int_eq(fin_migrate(ctx, migrations_dir(), false, out), FIN_OK);
	fclose(out);
	ck_assert_msg(strstr(buf, "0 applied") != NULL, "%s", buf);
	free(buf);
	fin_ctx_free(ctx);
	fin_config_free(c);
	fin_ctx_free(admin);
}
END_TEST

static Suite *
db_suite(void)
{
	Suite	*s = suite_create("db");
	TCase	*core = tcase_create("core");
	TCase	*errors = tcase_create("errors");

	tcase_add_checked_fixture(core, setup, teardown);
	tcase_add_checked_fixture(errors, setup, teardown);
	tcase_set_timeout(core, 30);
	tcase_set_timeout(errors, 30);
	tcase_add_test(core, test_db_parameters_are_data);
	tcase_add_test(core, test_db_timestamps_in_api_form);
	tcase_add_test(core, test_db_unique_violation_and_rollback);
	tcase_add_test(core, test_db_commit_of_aborted_transaction_fails);
	tcase_add_test(core, test_db_migrate_concurrent_and_idempotent);
	tcase_add_test(errors, test_db_reconnects_after_backend_killed);
	tcase_add_test(errors, test_db_exec_once_is_not_resent);
	tcase_add_test(errors, test_db_unreachable_is_unavailable);
	tcase_add_test(errors, test_db_statement_timeout_is_unavailable);
	tcase_add_test(errors, test_db_silent_server_is_unavailable);
	suite_add_tcase(s, core);
	suite_add_tcase(s, errors);
	return s;
}

FIN_CHECK_MAIN(db_suite)
