/*
 * Configuration: defaults, the env file, bounds, and the refusal to start
 * with missing or short secrets outside development.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "unit.h"

#define GOOD_SECRET "0123456789abcdef0123456789abcdef-ok"

static void
clean_env(void)
{
	unsetenv("FINANCE_ENV");
	unsetenv("FINANCE_ENV_FILE");
	unsetenv("JWT_SECRET");
	unsetenv("REFRESH_TOKEN_SECRET");
	unsetenv("LOCKOUT_THRESHOLD");
	unsetenv("DATABASE_URL");
	unsetenv("LOG_LEVEL");
	/* Never pick up a developer's ./.env. */
	ck_assert_int_eq(chdir("/"), 0);
}

START_TEST(test_config_production_needs_secrets)
{
	struct fin_config *c;
	char	 why[256];

	clean_env();
	c = fin_config_load(true, why, sizeof(why));
	ck_assert_ptr_null(c);
	ck_assert(strstr(why, "JWT_SECRET is missing") != NULL);
	setenv("JWT_SECRET", "short", 1);
	c = fin_config_load(true, why, sizeof(why));
	ck_assert_ptr_null(c);
	ck_assert(strstr(why, "JWT_SECRET is too short") != NULL);
	/* The reason never echoes the secret. */
	ck_assert(strstr(why, "short\"") == NULL);
	setenv("JWT_SECRET", GOOD_SECRET, 1);
	c = fin_config_load(true, why, sizeof(why));
	ck_assert_ptr_null(c);
	ck_assert(strstr(why, "REFRESH_TOKEN_SECRET") != NULL);
	setenv("REFRESH_TOKEN_SECRET", GOOD_SECRET, 1);
	c = fin_config_load(true, why, sizeof(why));
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->env, FIN_ENV_PRODUCTION);
	fin_config_free(c);
}
END_TEST

START_TEST(test_config_development_defaults)
{
	struct fin_config *c;
	char	 why[256];

	clean_env();
	setenv("FINANCE_ENV", "development", 1);
	c = fin_config_load(true, why, sizeof(why));
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_ge(strlen(c->jwt_secret), FIN_SECRET_MIN);
	ck_assert_int_eq(c->lockout_threshold, 5);
	ck_assert_int_eq(c->lockout_seconds, 1800);
	ck_assert_int_eq(c->access_token_ttl, 900);
	ck_assert_int_eq(c->refresh_token_ttl, 30 * 86400);
	ck_assert_int_eq(c->log_level, FIN_LOG_INFO);
	fin_config_free(c);
}
END_TEST

START_TEST(test_config_tools_need_no_secrets)
{
	struct fin_config *c;
	char	 why[256];

	clean_env();
	c = fin_config_load(false, why, sizeof(why));
	ck_assert_ptr_nonnull(c);
	fin_config_free(c);
}
END_TEST

START_TEST(test_config_bounds_and_enums)
{
	struct fin_config *c;
	char	 why[256];

	clean_env();
	setenv("FINANCE_ENV", "development", 1);
	setenv("LOCKOUT_THRESHOLD", "0", 1);
	ck_assert_ptr_null(fin_config_load(true, why, sizeof(why)));
	ck_assert(strstr(why, "LOCKOUT_THRESHOLD") != NULL);
	setenv("LOCKOUT_THRESHOLD", "5x", 1);
	ck_assert_ptr_null(fin_config_load(true, why, sizeof(why)));
	setenv("LOCKOUT_THRESHOLD", "7", 1);
	c = fin_config_load(true, why, sizeof(why));
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->lockout_threshold, 7);
	fin_config_free(c);
	setenv("LOG_LEVEL", "loud", 1);
	ck_assert_ptr_null(fin_config_load(true, why, sizeof(why)));
	setenv("FINANCE_ENV", "staging", 1);
	unsetenv("LOG_LEVEL");
	ck_assert_ptr_null(fin_config_load(true, why, sizeof(why)));
	ck_assert(strstr(why, "FINANCE_ENV") != NULL);
}
END_TEST

START_TEST(test_config_env_file)
{
	struct fin_config *c;
	char	 path[] = "/tmp/fin-envXXXXXX", why[256];
	FILE	*f;
	int	 fd;

	clean_env();
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	fprintf(f, "# comment\n\nexport FINANCE_ENV=production\n"
	    "JWT_SECRET=\"%s\"\nREFRESH_TOKEN_SECRET='%s'\n"
	    "LOCKOUT_THRESHOLD=9\nDATABASE_URL=postgresql://file/db\n",
	    GOOD_SECRET, GOOD_SECRET);
	fclose(f);
	setenv("FINANCE_ENV_FILE", path, 1);
	/* The process environment wins over the file. */
	setenv("DATABASE_URL", "postgresql://env/db", 1);
	c = fin_config_load(true, why, sizeof(why));
	ck_assert_msg(c != NULL, "%s", why);
	ck_assert_int_eq(c->lockout_threshold, 9);
	ck_assert_str_eq(c->jwt_secret, GOOD_SECRET);
	ck_assert_str_eq(c->refresh_token_secret, GOOD_SECRET);
	ck_assert_str_eq(c->database_url, "postgresql://env/db");
	fin_config_free(c);

	f = fopen(path, "w");
	fprintf(f, "this line has no equals sign\n");
	fclose(f);
	ck_assert_ptr_null(fin_config_load(true, why, sizeof(why)));
	ck_assert(strstr(why, ":1:") != NULL);
	/* A copy (the master's) is read, its original named in the reason. */
	ck_assert_ptr_null(fin_config_load_from(path, "/etc/finance/finance.env",
	    true, why, sizeof(why)));
	ck_assert_msg(strncmp(why, "/etc/finance/finance.env:1: ", 28) == 0,
	    "%s", why);
	ck_assert_str_eq(fin_config_env_path(), path);
	unlink(path);
	setenv("FINANCE_ENV_FILE", "/nonexistent/finance.env", 1);
	ck_assert_ptr_null(fin_config_load(true, why, sizeof(why)));
}
END_TEST

static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*core = tcase_create("core");
	TCase	*errors = tcase_create("errors");

	tcase_add_test(core, test_config_development_defaults);
	tcase_add_test(core, test_config_tools_need_no_secrets);
	tcase_add_test(core, test_config_env_file);
	tcase_add_test(errors, test_config_production_needs_secrets);
	tcase_add_test(errors, test_config_bounds_and_enums);
	suite_add_tcase(s, core);
	suite_add_tcase(s, errors);
	return s;
}

FIN_CHECK_MAIN(config_suite)
