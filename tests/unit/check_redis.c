/*
 * The Redis layer against a real server: commands, a pipelined round trip,
 * the fast failure (with backoff) when Redis cannot be reached, and a
 * connection Redis closed while idle replaced before use.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "unit.h"

static struct fin_config *cfg;

static void
setup(void)
{
	char	 why[256];

	FIN_REQUIRE_ENV("REDIS_URL");
	cfg = fin_config_load(false, why, sizeof(why));
	ck_assert_msg(cfg != NULL, "%s", why);
}

static void
teardown(void)
{
	fin_config_free(cfg);
}

START_TEST(test_redis_command_roundtrip)
{
	struct fin_ctx	*ctx = fin_ctx_new(cfg);
	const char	*set[] = { "SET", "fin:test:k", "v\0x" };
	size_t		 setlen[] = { 3, 10, 3 };
	const char	*get[] = { "GET", "fin:test:k" };
	redisReply	*r;

	ck_assert_int_eq(fin_redis_ping(ctx), FIN_OK);
	ck_assert_int_eq(Fin_redis_command(ctx, &r, 3, set, setlen), FIN_OK);
	freeReplyObject(r);
	ck_assert_int_eq(Fin_redis_command(ctx, &r, 2, get, NULL), FIN_OK);
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	ck_assert_uint_eq(r->len, 3);
	ck_assert_int_eq(memcmp(r->str, "v\0x", 3), 0);
	freeReplyObject(r);
	fin_ctx_free(ctx);
}
END_TEST

START_TEST(test_redis_pipeline_one_round_trip)
{
	struct fin_ctx	*ctx = fin_ctx_new(cfg);
	const char	*a[] = { "INCR", "fin:test:n" };
	const char	*b[] = { "INCR", "fin:test:n" };
	const char	*c[] = { "GET", "fin:test:n" };
	const char	**argv[] = { a, b, c };
	int		 argc[] = { 2, 2, 2 };
	redisReply	*r[3];
	const char	*del[] = { "DEL", "fin:test:n" };
	redisReply	*d;

	ck_assert_int_eq(Fin_redis_command(ctx, &d, 2, del, NULL), FIN_OK);
	freeReplyObject(d);
	ck_assert_int_eq(Fin_redis_pipeline(ctx, 3, argc, argv, NULL, r), FIN_OK);
	ck_assert_int_eq(r[0]->integer, 1);
	ck_assert_int_eq(r[1]->integer, 2);
	ck_assert_str_eq(r[2]->str, "2");
	freeReplyObject(r[0]);
	freeReplyObject(r[1]);
	freeReplyObject(r[2]);
	fin_ctx_free(ctx);
}
END_TEST

START_TEST(test_redis_down_fails_fast)
{
	struct fin_config *c;
	struct fin_ctx	*ctx;
	const char	*get[] = { "GET", "x" };
	redisReply	*r;
	char		 why[256];
	int64_t		 t0;

	setenv("REDIS_URL", "redis://127.0.0.1:1/0", 1);
	c = fin_config_load(false, why, sizeof(why));
	ck_assert_ptr_nonnull(c);
	ctx = fin_ctx_new(c);
	ck_assert_int_eq(Fin_redis_command(ctx, &r, 2, get, NULL),
	    FIN_E_SERVICE_UNAVAILABLE);
	ck_assert_ptr_null(r);
	/* Within the backoff nothing is even attempted. */
	t0 = fin_now_ms();
	ck_assert(!Fin_redis_available(ctx));
	ck_assert_int_lt(fin_now_ms() - t0, 50);
	fin_ctx_free(ctx);
	fin_config_free(c);
	setenv("REDIS_URL", "http://nope", 1);
	c = fin_config_load(false, why, sizeof(why));
	ctx = fin_ctx_new(c);
	ck_assert_int_eq(fin_redis_ping(ctx), FIN_E_SERVICE_UNAVAILABLE);
	fin_ctx_free(ctx);
	fin_config_free(c);
}
END_TEST

/*
 * Redis closed an idle connection (as when it restarts): the next command
 * finds out before sending and runs on a new connection, instead of
 * failing and leaving the worker without Redis for the backoff.
 */
START_TEST(test_redis_closed_idle_connection_is_replaced)
{
	struct fin_ctx	*ctx = fin_ctx_new(cfg), *killer = fin_ctx_new(cfg);
	const char	*id[] = { "CLIENT", "ID" };
	const char	*kill[] = { "CLIENT", "KILL", "ID", NULL };
	const char	*get[] = { "GET", "fin:test:idle" };
	redisReply	*r;
	char		 num[32];

	ck_assert_int_eq(Fin_redis_command(ctx, &r, 2, id, NULL), FIN_OK);
	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	snprintf(num, sizeof(num), "%lld", r->integer);
	freeReplyObject(r);
	kill[3] = num;
	ck_assert_int_eq(Fin_redis_command(killer, &r, 4, kill, NULL), FIN_OK);
	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	ck_assert_int_eq(r->integer, 1);
	freeReplyObject(r);
	usleep(200 * 1000);
	ck_assert_int_eq(Fin_redis_command(ctx, &r, 2, get, NULL), FIN_OK);
	freeReplyObject(r);
	ck_assert_int_eq(Fin_redis_command(ctx, &r, 2, id, NULL), FIN_OK);
	ck_assert_str_ne(num, "");
	ck_assert_int_ne(r->integer, atoll(num));
	freeReplyObject(r);
	fin_ctx_free(ctx);
	fin_ctx_free(killer);
}
END_TEST

static Suite *
redis_suite(void)
{
	Suite	*s = suite_create("redis");
	TCase	*core = tcase_create("core");
	TCase	*errors = tcase_create("errors");

	tcase_add_checked_fixture(core, setup, teardown);
	tcase_add_checked_fixture(errors, setup, teardown);
	tcase_add_test(core, test_redis_command_roundtrip);
	tcase_add_test(core, test_redis_pipeline_one_round_trip);
	tcase_add_test(errors, test_redis_down_fails_fast);
	tcase_add_test(errors, test_redis_closed_idle_connection_is_replaced);
	suite_add_tcase(s, core);
	suite_add_tcase(s, errors);
	return s;
}

FIN_CHECK_MAIN(redis_suite)
