/*
 * Rate limits against a real Redis: two workers (two contexts) draw from
 * one counter, the limit is exact, the window refills, and with Redis
 * down the limits fail open.  The response cache's look-up rides in the
 * same round trip, and a fill sent without waiting reaches every worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "unit.h"

static struct fin_config *cfg;

static void
setup(void)
{
	char	 why[256];

	FIN_REQUIRE_ENV("REDIS_URL");
	setenv("RATE_LIMIT_IP_PER_MIN", "5", 1);
	setenv("RATE_LIMIT_IP_WINDOW", "2", 1);
	cfg = fin_config_load(false, why, sizeof(why));
	ck_assert_msg(cfg != NULL, "%s", why);
}

static void
teardown(void)
{
	fin_config_free(cfg);
}

static bool
allowed(struct fin_ctx *ctx, const char *ip, struct fin_gate_result *r)
{
	struct fin_gate	 in = { .ip = ip, .limits = 1u << FIN_LIMIT_IP };

	ck_assert_int_eq(fin_gate_check(ctx, &in, r), FIN_OK);
	ck_assert(r->limits[FIN_LIMIT_IP].checked);
	return r->denied < 0;
}

START_TEST(test_gate_shared_counter_exact_limit)
{
	struct fin_ctx	*w1 = fin_ctx_new(cfg), *w2 = fin_ctx_new(cfg);
	struct fin_gate_result r;
	char		 ip[64];
	int		 i, ok = 0;

	snprintf(ip, sizeof(ip), "10.0.0.%d", (int)getpid() % 250);
	for (i = 0; i < 10; i++)
		ok += allowed(i % 2 ? w1 : w2, ip, &r);
	ck_assert_int_eq(ok, 5);
	ck_assert_int_eq(r.limits[FIN_LIMIT_IP].limit, 5);
	ck_assert_int_eq(r.limits[FIN_LIMIT_IP].remaining, 0);
	ck_assert_int_ge(r.limits[FIN_LIMIT_IP].retry_after, 1);
	ck_assert_int_eq(r.denied, FIN_LIMIT_IP);
	/* Another IP has its own counter. */
	ck_assert(allowed(w1, "192.0.2.1", &r));
	/* After the window, allowed again. */
	sleep(2);
	ck_assert(allowed(w2, ip, &r));
	fin_ctx_free(w1);
	fin_ctx_free(w2);
}
END_TEST

START_TEST(test_gate_remaining_counts_down)
{
	struct fin_ctx	*w = fin_ctx_new(cfg);
	struct fin_gate_result r;

	ck_assert(allowed(w, "198.51.100.7", &r));
	ck_assert_int_eq(r.limits[FIN_LIMIT_IP].remaining, 4);
	ck_assert(allowed(w, "198.51.100.7", &r));
	ck_assert_int_eq(r.limits[FIN_LIMIT_IP].remaining, 3);
	fin_ctx_free(w);
}
END_TEST

START_TEST(test_gate_survives_script_flush)
{
	struct fin_ctx	*w = fin_ctx_new(cfg);
	struct fin_gate_result r;
	const char	*flush[] = { "SCRIPT", "FLUSH" };
	redisReply	*rep;

	ck_assert(allowed(w, "198.51.100.8", &r));
	ck_assert_int_eq(r.limits[FIN_LIMIT_IP].remaining, 4);
	/* As after a Redis restart: the script is gone, EVALSHA fails. */
	ck_assert_int_eq(Fin_redis_command(w, &rep, 2, flush, NULL), FIN_OK);
	freeReplyObject(rep);
	ck_assert(allowed(w, "198.51.100.8", &r));
	ck_assert(!r.limits_failed_open);
	/* Loaded again and counted once, not failed open nor counted twice. */
	ck_assert_int_eq(r.limits[FIN_LIMIT_IP].remaining, 3);
	fin_ctx_free(w);
}
END_TEST

START_TEST(test_gate_fails_open_without_redis)
{
	struct fin_config *c;
	struct fin_ctx	*w;
	struct fin_gate_result r;
	struct fin_gate	 in = { .ip = "203.0.113.1", .limits = 1u << FIN_LIMIT_IP };
	char		 why[256];

	setenv("REDIS_URL", "redis://127.0.0.1:1/0", 1);
	c = fin_config_load(false, why, sizeof(why));
	w = fin_ctx_new(c);
	ck_assert_int_eq(fin_gate_check(w, &in, &r), FIN_OK);
	ck_assert_int_eq(r.denied, -1);
	ck_assert(r.limits_failed_open);
	fin_ctx_free(w);
	fin_config_free(c);
}
END_TEST

START_TEST(test_gate_bad_tokens_unauthorized)
{
	struct fin_ctx	*w = fin_ctx_new(cfg);
	struct fin_gate_result r;
	struct fin_gate	 in = { .ip = "203.0.113.2", .token = "not.a.jwt" };

	ck_assert_int_eq(fin_gate_check(w, &in, &r), FIN_OK);
	ck_assert_int_eq(r.auth, FIN_E_UNAUTHORIZED);
	in.token = "";
	ck_assert_int_eq(fin_gate_check(w, &in, &r), FIN_OK);
	ck_assert_int_eq(r.auth, FIN_E_UNAUTHORIZED);
	fin_ctx_free(w);
}
END_TEST

/* The gate of user's token on route /t?q, its cache look-up with it. */
static void
gate_with_cache(struct fin_ctx *w, struct fin_arena *a, const char *token,
    const char *q, struct fin_gate_result *r)
{
	struct fin_gate	 in = { .ip = "203.0.113.3", .token = token,
	    .limits = 1u << FIN_LIMIT_IP, .cache_kind = "/t", .cache_query = q,
	    .arena = a };

	ck_assert_int_eq(fin_gate_check(w, &in, r), FIN_OK);
	ck_assert(r->cache.usable);
}

START_TEST(test_gate_cache_rides_along)
{
	struct fin_ctx	*w1, *w2;
	struct fin_arena *a = fin_arena_new(1 << 20);
	struct fin_gate_result r;
	struct fin_jwt_claims c;
	struct fin_config *jc;
	char		 tok[FIN_JWT_MAX + 1], why[256], q[64];

	ck_assert_ptr_nonnull(a);
	setenv("JWT_SECRET", "check-gate-secret-0123456789abcdef0123456789", 1);
	jc = fin_config_load(false, why, sizeof(why));
	ck_assert_msg(jc != NULL, "%s", why);
	w1 = fin_ctx_new(jc);
	w2 = fin_ctx_new(jc);
	memset(&c, 0, sizeof(c));
	fin_uuid_v4(c.sub);
	fin_uuid_v4(c.sid);
	fin_uuid_v4(c.jti);
	c.iat = (int64_t)time(NULL);
	c.exp = c.iat + 60;
	ck_assert_int_eq(fin_jwt_sign(jc, &c, tok, sizeof(tok)), FIN_OK);
	snprintf(q, sizeof(q), "limit=%d", (int)getpid());

	gate_with_cache(w1, a, tok, q, &r);
	ck_assert_ptr_null(r.cache.body);
	fin_cache_put(w1, c.sub, &r.cache, "{\"page\":1}", "\"tag-1\"");
	/* Sent without waiting: it leaves with the next round trip ... */
	gate_with_cache(w1, a, tok, q, &r);
	ck_assert_str_eq(r.cache.body, "{\"page\":1}");
	ck_assert_str_eq(r.cache.tag, "\"tag-1\"");
	/* ... or when the worker is about to go idle. */
	gate_with_cache(w1, a, tok, "other=1", &r);
	fin_cache_put(w1, c.sub, &r.cache, "{\"page\":2}", "");
	ck_assert(fin_redis_unflushed(w1));
	fin_redis_flush(w1);
	ck_assert(!fin_redis_unflushed(w1));
	gate_with_cache(w2, a, tok, "other=1", &r);
	ck_assert_str_eq(r.cache.body, "{\"page\":2}");
	/* A fresh read asks only for the generation: never a hit. */
	{
		struct fin_gate in = { .ip = "203.0.113.3", .token = tok,
		    .cache_kind = "/t", .cache_query = "other=1", .arena = a,
		    .cache_generation_only = true };

		ck_assert_int_eq(fin_gate_check(w1, &in, &r), FIN_OK);
		ck_assert(r.cache.usable);
		ck_assert_ptr_null(r.cache.body);
		fin_cache_put(w1, c.sub, &r.cache, "{\"page\":3}", "t3");
		/* A tag that would break the format is not stored. */
		fin_cache_put(w1, c.sub, &r.cache, "{\"page\":4}", "a\nb");
		gate_with_cache(w1, a, tok, "other=1", &r);
		ck_assert_str_eq(r.cache.body, "{\"page\":3}");
		ck_assert_str_eq(r.cache.tag, "t3");
	}
	/* Another query is another page; a write makes every page old. */
	gate_with_cache(w2, a, tok, "other=2", &r);
	ck_assert_ptr_null(r.cache.body);
	fin_cache_invalidate(w2, c.sub);
	gate_with_cache(w1, a, tok, q, &r);
	ck_assert_ptr_null(r.cache.body);
	/* A public route (no token) looks nothing up. */
	{
		struct fin_gate in = { .ip = "203.0.113.3", .cache_kind = "/t",
		    .cache_query = q, .arena = a };

		ck_assert_int_eq(fin_gate_check(w1, &in, &r), FIN_OK);
		ck_assert(!r.cache.usable);
	}
	fin_ctx_free(w1);
	fin_ctx_free(w2);
	fin_arena_free(a);
	fin_config_free(jc);
}
END_TEST

START_TEST(test_cache_directives)
{
	static const struct {
		const char	*cc, *pragma;
		unsigned	 want;
	} t[] = {
		{ NULL, NULL, 0 },
		{ "", "", 0 },
		{ "no-cache", NULL, FIN_CACHE_NO_READ },
		{ "No-Cache", NULL, FIN_CACHE_NO_READ },
		{ "max-age=0", NULL, FIN_CACHE_NO_READ },
		{ "max-age=\"0\"", NULL, FIN_CACHE_NO_READ },
		{ "max-age=00", NULL, FIN_CACHE_NO_READ },
		{ "max-age=10", NULL, 0 },
		{ "max-age=", NULL, 0 },
		{ "max-age", NULL, 0 },
		{ "no-store", NULL, FIN_CACHE_NO_STORE },
		{ " no-cache ,\tno-store ", NULL,
		    FIN_CACHE_NO_READ | FIN_CACHE_NO_STORE },
		{ "private, max-age=0, must-revalidate", NULL, FIN_CACHE_NO_READ },
		/* Names are whole tokens; a quoted comma is not a separator. */
		{ "no-cachex, xno-store", NULL, 0 },
		{ "foo=\"a, no-cache, b\", no-store", NULL, FIN_CACHE_NO_STORE },
		{ "foo=\"a\\\", no-cache\"", NULL, 0 },
		{ "foo=\"unterminated, no-cache", NULL, 0 },
		{ "=,=no-cache,,", NULL, 0 },
		/* Pragma only counts without Cache-Control. */
		{ NULL, "no-cache", FIN_CACHE_NO_READ },
		{ "", "NO-CACHE", FIN_CACHE_NO_READ },
		{ "max-age=60", "no-cache", 0 },
		{ NULL, "no-store", 0 },
	};
	size_t		 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_msg(fin_cache_directives(t[i].cc, t[i].pragma) ==
		    t[i].want, "case %zu: \"%s\" / \"%s\"", i,
		    t[i].cc ? t[i].cc : "(null)",
		    t[i].pragma ? t[i].pragma : "(null)");
}
END_TEST

/* A signed access token for pr, good for a minute. */
static void
token_for(const struct fin_config *c, const struct fin_principal *pr,
    char tok[FIN_JWT_MAX + 1])
{
	struct fin_jwt_claims cl;

	memset(&cl, 0, sizeof(cl));
	snprintf(cl.sub, sizeof(cl.sub), "%s", pr->user_id);
	snprintf(cl.sid, sizeof(cl.sid), "%s", pr->session_id);
	fin_uuid_v4(cl.jti);
	cl.iat = (int64_t)time(NULL);
	cl.exp = cl.iat + 60;
	ck_assert_int_eq(fin_jwt_sign(c, &cl, tok, FIN_JWT_MAX + 1), FIN_OK);
}

static enum fin_err
auth_of(struct fin_ctx *w, const char *tok)
{
	struct fin_gate	 in = { .ip = "203.0.113.4", .token = tok };
	struct fin_gate_result r;

	ck_assert_int_eq(fin_gate_check(w, &in, &r), FIN_OK);
	return r.auth;
}

/* Statements are known by their address: one static each. */
static const struct fin_stmt t_user = { "t_user",
	"INSERT INTO users (email, name, password_hash)"
	" VALUES ($1, 'Gate', 'x') RETURNING id", 1 };
static const struct fin_stmt t_session = { "t_session",
	"INSERT INTO sessions (user_id, ip, user_agent)"
	" VALUES ($1, '127.0.0.1', 'check') RETURNING id", 1 };
static const struct fin_stmt t_revoke = { "t_revoke",
	"UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'"
	" WHERE id = $1", 1 };
static const struct fin_stmt t_flood = { "t_flood",
	"SELECT count(pg_notify('fin_session_revoked', g::text))"
	" FROM generate_series(1, $1::int) AS g", 1 };

static void
sql1(struct fin_ctx *w, const struct fin_stmt *st, const char *const *p,
    char *out, size_t outlen)
{
	PGresult	*res;

	ck_assert_int_eq(Fin_db_exec(w, st, p, &res), FIN_OK);
	if (out != NULL) {
		ck_assert_int_eq(PQntuples(res), 1);
		snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
	}
	PQclear(res);
}

/*
 * A revocation whose tombstone never reached Redis (the revoking worker
 * was cut off from it): PostgreSQL's announcement outranks the "alive"
 * entry on every other worker, and a worker that may have missed an
 * announcement believes no entry.
 */
START_TEST(test_gate_revocation_announced_by_postgresql)
{
	struct fin_config *jc;
	struct fin_ctx	*w;
	struct fin_principal ghost, real;
	char		 tok_ghost[FIN_JWT_MAX + 1], tok_real[FIN_JWT_MAX + 1];
	char		 why[256], email[64];
	const char	*p[1];

	FIN_REQUIRE_ENV("DATABASE_URL");
	setenv("JWT_SECRET", "check-gate-secret-0123456789abcdef0123456789", 1);
	jc = fin_config_load(false, why, sizeof(why));
	ck_assert_msg(jc != NULL, "%s", why);
	w = fin_ctx_new(jc);

	/* A session only the mirror knows: believed means the mirror was. */
	fin_uuid_v4(ghost.user_id);
	fin_uuid_v4(ghost.session_id);
	token_for(jc, &ghost, tok_ghost);
	ck_assert_int_eq(auth_of(w, tok_ghost), FIN_E_UNAUTHORIZED);
	Fin_session_mirror_set(w, &ghost);
	/* Listening for less than the mirror's TTL: PostgreSQL decides. */
	ck_assert_int_eq(auth_of(w, tok_ghost), FIN_E_UNAUTHORIZED);
	w->pg_listening_ms -= 61 * 1000;
	ck_assert_int_eq(auth_of(w, tok_ghost), FIN_OK);

	/* A real session, mirrored "alive" by a first request. */
	snprintf(email, sizeof(email), "gate-%d@example.com", (int)getpid());
	p[0] = email;
	sql1(w, &t_user, p, real.user_id, sizeof(real.user_id));
	p[0] = real.user_id;
	sql1(w, &t_session, p, real.session_id, sizeof(real.session_id));
	token_for(jc, &real, tok_real);
	ck_assert_int_eq(auth_of(w, tok_real), FIN_OK);
	/* Revoked in PostgreSQL with no tombstone in Redis at all. */
	p[0] = real.session_id;
	sql1(w, &t_revoke, p, NULL, 0);
	ck_assert_int_eq(auth_of(w, tok_real), FIN_E_UNAUTHORIZED);
	/* The ghost, another session, is still believed. */
	ck_assert_int_eq(auth_of(w, tok_ghost), FIN_OK);

	/* More announcements than a worker keeps: it believes no entry. */
	p[0] = "300";
	sql1(w, &t_flood, p, why, sizeof(why));
	ck_assert_int_eq(auth_of(w, tok_ghost), FIN_E_UNAUTHORIZED);

	/* A new connection may have missed one: none believed at first. */
	fin_ctx_free(w);
	w = fin_ctx_new(jc);
	ck_assert_int_eq(auth_of(w, tok_ghost), FIN_E_UNAUTHORIZED);
	fin_ctx_free(w);
	fin_config_free(jc);
}
END_TEST

static Suite *
gate_suite(void)
{
	Suite	*s = suite_create("gate");
	TCase	*core = tcase_create("core");
	TCase	*errors = tcase_create("errors");

	tcase_add_checked_fixture(core, setup, teardown);
	tcase_add_checked_fixture(errors, setup, teardown);
	tcase_set_timeout(core, 20);
	tcase_add_test(core, test_gate_shared_counter_exact_limit);
	tcase_add_test(core, test_gate_remaining_counts_down);
	tcase_add_test(core, test_gate_cache_rides_along);
	tcase_add_test(core, test_cache_directives);
	tcase_add_test(core, test_gate_survives_script_flush);
	tcase_add_test(core, test_gate_revocation_announced_by_postgresql);
	tcase_add_test(errors, test_gate_fails_open_without_redis);
	tcase_add_test(errors, test_gate_bad_tokens_unauthorized);
	suite_add_tcase(s, core);
	suite_add_tcase(s, errors);
	return s;
}

FIN_CHECK_MAIN(gate_suite)
