/*
 * Feature flag rollouts: deterministic per user, monotonic in the
 * percentage, and close to the percentage over many users.  With
 * DATABASE_URL (tests/harness/with-services, or a stack's env), also the
 * admin side against a scratch database: no more flags than a worker
 * holds, a re-enabled flag keeps its rollout, and the migrations that
 * create that database (finance-migrate outlives DB_STATEMENT_TIMEOUT,
 * waits for a concurrent run, gives way to busy tables, refuses a file
 * changed after it was applied or misnamed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "unit.h"

static void
user_id(int i, char out[37])
{
	snprintf(out, 37, "00000000-0000-4000-8000-%012d", i);
}

START_TEST(test_flags_rollout_close_to_percent)
{
	char	 id[37];
	int	 i, on = 0;

	for (i = 0; i < 1000; i++) {
		user_id(i, id);
		if (fin_flag_bucket("new_ui", id) < 50)
			on++;
	}
	ck_assert_msg(on >= 450 && on <= 550, "50%% rollout gave %d/1000", on);
}
END_TEST

START_TEST(test_flags_deterministic_and_monotonic)
{
	char	 id[37];
	int	 i, b;

	for (i = 0; i < 200; i++) {
		user_id(i, id);
		b = fin_flag_bucket("pdf_export", id);
		ck_assert_int_ge(b, 0);
		ck_assert_int_lt(b, 100);
		ck_assert_int_eq(b, fin_flag_bucket("pdf_export", id));
	}
	/* Enabled at p means bucket < p: once on, on at every higher p. */
	user_id(7, id);
	b = fin_flag_bucket("x", id);
	for (i = b + 1; i <= 100; i++)
		ck_assert(b < i);
	/* Different flags spread users differently. */
	for (i = 0, b = 0; i < 100; i++) {
		user_id(i, id);
		b += fin_flag_bucket("a", id) == fin_flag_bucket("b", id);
	}
	ck_assert_int_lt(b, 20);
}
END_TEST

START_TEST(test_flags_keys)
{
	ck_assert(fin_flag_key_valid("pdf_export"));
	ck_assert(fin_flag_key_valid("a1"));
	ck_assert(!fin_flag_key_valid(""));
	ck_assert(!fin_flag_key_valid("PDF"));
	ck_assert(!fin_flag_key_valid("a-b"));
	ck_assert(!fin_flag_key_valid("a b"));
	ck_assert(!fin_flag_key_valid(
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Against PostgreSQL                                                  */
/* ------------------------------------------------------------------ */

#define SCRATCH_DB	"finance_flags_test"

static struct fin_config *dbcfg;
static char	 migdir[256];

static bool
have_db(void)
{
	if (getenv("DATABASE_URL") != NULL && getenv("DATABASE_URL")[0] != '\0')
		return true;
	fprintf(stderr, "check_flags: DATABASE_URL not set, database tests "
	    "skipped\n");
	return false;
}

/*
 * A fresh database, the migrations copied to migdir, and a config for
 * them with a statement_timeout far below what a migration may take.
 */
static void
db_setup(void)
{
	static char	 base[1024];
	struct fin_config *c;
	struct fin_ctx	*admin;
	char		 url[1024], why[256], cmd[1024];
	const char	*top = getenv("top_srcdir");

	if (!have_db())
		return;
	/* The server's own database, whichever test comes first. */
	if (base[0] == '\0')
		snprintf(base, sizeof(base), "%s", getenv("DATABASE_URL"));
	setenv("DATABASE_URL", base, 1);
	c = fin_config_load(false, why, sizeof(why));
	ck_assert_msg(c != NULL, "%s", why);
	admin = fin_ctx_new(c);
	ck_assert_int_eq(Fin_db_exec_script(admin,
	    "DROP DATABASE IF EXISTS " SCRATCH_DB " WITH (FORCE)"), FIN_OK);
	ck_assert_int_eq(Fin_db_exec_script(admin,
	    "CREATE DATABASE " SCRATCH_DB), FIN_OK);
	fin_ctx_free(admin);
	fin_config_free(c);
	snprintf(url, sizeof(url), "%s", base);
	ck_assert_ptr_nonnull(strrchr(url, '/'));
	snprintf(strrchr(url, '/') + 1, sizeof(url) - (size_t)(strrchr(url, '/') +
	    1 - url), SCRATCH_DB);
	setenv("DATABASE_URL", url, 1);
	setenv("DB_STATEMENT_TIMEOUT", "300", 1);
	dbcfg = fin_config_load(false, why, sizeof(why));
	ck_assert_msg(dbcfg != NULL, "%s", why);
	snprintf(migdir, sizeof(migdir), "/tmp/check_flags.%ld", (long)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir %s && cp %s/db/migrations/"
	    "*.sql %s/", migdir, migdir, top != NULL ? top : ".", migdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void
db_teardown(void)
{
	char	 cmd[512];

	if (dbcfg == NULL)
		return;
	fin_config_free(dbcfg);
	dbcfg = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", migdir);
	(void)system(cmd);
}

static void
add_migration(const char *name, const char *sql)
{
	char	 path[512];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", migdir, name);
	f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	fputs(sql, f);
	fclose(f);
}

/* fin_migrate into a string; returns its result. */
static enum fin_err
migrate(char **text)
{
	struct fin_ctx	*ctx = fin_ctx_new(dbcfg);
	size_t		 len = 0;
	FILE		*out;
	enum fin_err	 e;

	*text = NULL;
	out = open_memstream(text, &len);
	e = fin_migrate(ctx, migdir, false, out);
	fclose(out);
	fin_ctx_free(ctx);
	return e;
}

/* A child that runs sql on its own connection, then exits. */
static pid_t
hold(const char *sql)
{
	pid_t	 pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct fin_ctx *k = fin_ctx_new(dbcfg);

		/* A session without statement_timeout, as migrations run. */
		k->db_answer_ms = 0;
		_exit(Fin_db_exec_script(k, "SET statement_timeout = 0") ==
		    FIN_OK && Fin_db_exec_script(k, sql) == FIN_OK ? 0 : 1);
	}
	usleep(300 * 1000);
	return pid;
}

static void
reap(pid_t pid)
{
	int	 status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

START_TEST(test_migrate_outlives_statement_timeout)
{
	char	*out;
	pid_t	 pid;

	if (dbcfg == NULL)
		return;
	/* DB_STATEMENT_TIMEOUT is 300 ms: a run waits 1 s for another. */
	pid = hold("SELECT pg_advisory_lock(7235441290451493746); "
	    "SELECT pg_sleep(1)");
	add_migration("0900_slow.sql", "SELECT pg_sleep(0.6);\n");
	ck_assert_msg(migrate(&out) == FIN_OK, "%s", out);
	ck_assert_msg(strstr(out, "applied 0900_slow") != NULL, "%s", out);
	free(out);
	reap(pid);
	ck_assert_msg(migrate(&out) == FIN_OK, "%s", out);
	ck_assert_msg(strstr(out, "0 applied") != NULL, "%s", out);
	free(out);
}
END_TEST

/* A table busy past lock_timeout: the migration is tried again. */
START_TEST(test_migrate_retries_busy_table)
{
	char	*out;
	pid_t	 pid;

	if (dbcfg == NULL)
		return;
	ck_assert_msg(migrate(&out) == FIN_OK, "%s", out);
	free(out);
	pid = hold("BEGIN; LOCK TABLE feature_flags IN ACCESS SHARE MODE; "
	    "SELECT pg_sleep(3); COMMIT");
	add_migration("0901_ddl.sql",
	    "ALTER TABLE feature_flags ADD COLUMN check_flags text;\n");
	ck_assert_msg(migrate(&out) == FIN_OK, "%s", out);
	ck_assert_msg(strstr(out, "applied 0901_ddl") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "trying again") != NULL, "%s", out);
	free(out);
	reap(pid);
}
END_TEST

/* A file changed after it was applied stops the run. */
START_TEST(test_migrate_refuses_changed_file)
{
	char	*out;

	if (dbcfg == NULL)
		return;
	add_migration("0900_first.sql", "SELECT 1;\n");
	ck_assert_msg(migrate(&out) == FIN_OK, "%s", out);
	free(out);
	add_migration("0900_first.sql", "-- edited\n");
	add_migration("0902_later.sql", "SELECT 1;\n");
	ck_assert_msg(migrate(&out) != FIN_OK, "%s", out);
	ck_assert_msg(strstr(out, "failed 0900_first: it changed") != NULL, "%s",
	    out);
	ck_assert_msg(strstr(out, "applied 0902_later") == NULL, "%s", out);
	free(out);
}
END_TEST

/* A .sql file that is not named as a migration is no silent skip. */
START_TEST(test_migrate_refuses_misnamed_file)
{
	char	*out;

	if (dbcfg == NULL)
		return;
	add_migration("0900-Add_Index.sql", "SELECT 1;\n");
	ck_assert_msg(migrate(&out) != FIN_OK, "%s", out);
	ck_assert_msg(strstr(out, "0900-Add_Index.sql is not named") != NULL,
	    "%s", out);
	free(out);
}
END_TEST

static int
rollout_of(struct fin_ctx *ctx, const char *key)
{
	struct json_object *o, *data, *f;
	int		 pct = -2;
	size_t		 i;

	ck_assert_int_eq(fin_flags_admin_list(ctx, &o), FIN_OK);
	data = json_object_object_get(o, "data");
	for (i = 0; i < json_object_array_length(data); i++) {
		f = json_object_array_get_idx(data, i);
		if (strcmp(json_object_get_string(json_object_object_get(f, "key")),
		    key) == 0)
			pct = json_object_get_int(json_object_object_get(f,
			    "rollout_percent"));
	}
	json_object_put(o);
	return pct;
}

/* A rollback and a re-enable keep the rollout (5 %, not 100 %). */
START_TEST(test_flags_rollout_kept)
{
	struct fin_client client = { "127.0.0.1", "check_flags", "test" };
	struct fin_ctx	*ctx;
	struct json_object *o;
	char		*out;

	if (dbcfg == NULL)
		return;
	ck_assert_msg(migrate(&out) == FIN_OK, "%s", out);
	free(out);
	ctx = fin_ctx_new(dbcfg);
	ck_assert_int_eq(fin_flag_set(ctx, &client, NULL, "canary", true, 5,
	    NULL, &o), FIN_OK);
	json_object_put(o);
	ck_assert_int_eq(fin_flag_set(ctx, &client, NULL, "canary", false, -1,
	    NULL, &o), FIN_OK);
	json_object_put(o);
	ck_assert_int_eq(fin_flag_set(ctx, &client, NULL, "canary", true, -1,
	    NULL, &o), FIN_OK);
	json_object_put(o);
	ck_assert_int_eq(rollout_of(ctx, "canary"), 5);
	ck_assert_int_eq(fin_flag_set(ctx, &client, NULL, "fresh", true, -1,
	    NULL, &o), FIN_OK);
	json_object_put(o);
	ck_assert_int_eq(rollout_of(ctx, "fresh"), 100);
	fin_ctx_free(ctx);
}
END_TEST

START_TEST(test_flags_at_most_max)
{
	struct fin_client client = { "127.0.0.1", "check_flags", "test" };
	struct fin_ctx	*ctx;
	struct json_object *o;
	char		 key[16], uid[37], *out;
	int		 i;

	if (dbcfg == NULL)
		return;
	ck_assert_msg(migrate(&out) == FIN_OK, "%s", out);
	free(out);
	ctx = fin_ctx_new(dbcfg);
	user_id(1, uid);
	for (i = 0; i < 2; i++) {
		snprintf(key, sizeof(key), "b%02d", i);
		ck_assert_int_eq(fin_flag_set(ctx, &client, NULL, key, true, 100,
		    NULL, &o), FIN_OK);
		json_object_put(o);
	}

	/*
	 * pdf_export, b00, b01 and 61 more make the 64 a worker holds:
	 * the 65th is refused, and pdf_export ("p", after "a..") stays on.
	 */
	for (i = 0; i < 61; i++) {
		snprintf(key, sizeof(key), "a%02d", i);
		ck_assert_int_eq(fin_flag_set(ctx, &client, NULL, key, true, 100,
		    NULL, &o), FIN_OK);
		json_object_put(o);
	}
	ck_assert_int_eq(fin_flag_set(ctx, &client, NULL, "a61", true, 100,
	    NULL, &o), FIN_E_VALIDATION_ERROR);
	ck_assert_ptr_null(o);
	ck_assert_int_eq(fin_flag_set(ctx, &client, NULL, "a00", false, 100,
	    NULL, &o), FIN_OK);
	json_object_put(o);
	ck_assert(fin_flag_enabled(ctx, "pdf_export", uid));
	ck_assert(!fin_flag_enabled(ctx, "a00", uid));
	ck_assert(fin_flag_enabled(ctx, "a01", uid));
	fin_ctx_free(ctx);
}
END_TEST

static Suite *
flags_suite(void)
{
	Suite	*s = suite_create("flags");
	TCase	*core = tcase_create("core");
	TCase	*db = tcase_create("db");

	tcase_add_test(core, test_flags_rollout_close_to_percent);
	tcase_add_test(core, test_flags_deterministic_and_monotonic);
	tcase_add_test(core, test_flags_keys);
	suite_add_tcase(s, core);
	tcase_add_checked_fixture(db, db_setup, db_teardown);
	tcase_set_timeout(db, 60);
	tcase_add_test(db, test_migrate_outlives_statement_timeout);
	tcase_add_test(db, test_migrate_retries_busy_table);
	tcase_add_test(db, test_migrate_refuses_changed_file);
	tcase_add_test(db, test_migrate_refuses_misnamed_file);
	tcase_add_test(db, test_flags_rollout_kept);
	tcase_add_test(db, test_flags_at_most_max);
	suite_add_tcase(s, db);
	return s;
}

FIN_CHECK_MAIN(flags_suite)
