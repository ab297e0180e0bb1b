/*
 * The router and THE route table: literal segments win over captures,
 * a wrong method is 405 with that pattern's Allow, and every row of the
 * table can be reached by a request.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "unit.h"

static const struct route table[] = {
	{ M_GET,    "/transactions",              NULL, R_AUTH, NULL },
	{ M_POST,   "/transactions",              NULL, R_AUTH, NULL },
	{ M_GET,    "/transactions/{id}",         NULL, R_AUTH, NULL },
	{ M_PATCH,  "/transactions/{id}",         NULL, R_AUTH, NULL },
	{ M_GET,    "/transactions/summary",      NULL, R_AUTH, NULL },
	{ M_POST,   "/transactions/{id}/restore", NULL, R_AUTH, NULL },
	{ M_GET,    "/metrics",                   NULL, R_ROOT, NULL },
};
#define NTABLE	(sizeof(table) / sizeof(table[0]))

static enum route_match
match(enum method m, const char *path, const struct route **r,
    const char **params, size_t *np, bool allow[M__MAX])
{
	static struct fin_arena *a;

	if (a == NULL)
		a = fin_arena_new(1 << 20);
	return router_match(table, NTABLE, m, path, false, r, params, np, a,
	    allow);
}

START_TEST(test_router_literal_beats_capture)
{
	const struct route *r;
	const char	*p[MAX_PARAMS];
	size_t		 np;
	bool		 allow[M__MAX];

	ck_assert_int_eq(match(M_GET, "/transactions/summary", &r, p, &np, allow),
	    ROUTE_FOUND);
	ck_assert_str_eq(r->pattern, "/transactions/summary");
	ck_assert_uint_eq(np, 0);
	ck_assert_int_eq(match(M_GET, "/transactions/abc", &r, p, &np, allow),
	    ROUTE_FOUND);
	ck_assert_str_eq(r->pattern, "/transactions/{id}");
	ck_assert_uint_eq(np, 1);
	ck_assert_str_eq(p[0], "abc");
	ck_assert_int_eq(match(M_POST, "/transactions/x1/restore", &r, p, &np,
	    allow), ROUTE_FOUND);
	ck_assert_str_eq(p[0], "x1");
}
END_TEST

START_TEST(test_router_405_and_allow)
{
	const struct route *r;
	const char	*p[MAX_PARAMS];
	size_t		 np;
	bool		 allow[M__MAX];
	char		 hdr[128];

	ck_assert_int_eq(match(M_DELETE, "/transactions", &r, p, &np, allow),
	    ROUTE_NO_METHOD);
	router_allow_header(allow, hdr, sizeof(hdr));
	ck_assert_str_eq(hdr, "GET, HEAD, POST, OPTIONS");
	/* The most specific pattern decides what is allowed. */
	ck_assert_int_eq(match(M_PATCH, "/transactions/summary", &r, p, &np,
	    allow), ROUTE_NO_METHOD);
	router_allow_header(allow, hdr, sizeof(hdr));
	ck_assert_str_eq(hdr, "GET, HEAD, OPTIONS");
	ck_assert_int_eq(match(M__MAX, "/transactions", &r, p, &np, allow),
	    ROUTE_NO_METHOD);
}
END_TEST

START_TEST(test_router_404)
{
	const struct route *r;
	const char	*p[MAX_PARAMS];
	size_t		 np;
	bool		 allow[M__MAX];

	ck_assert_int_eq(match(M_GET, "/nope", &r, p, &np, allow), ROUTE_NO_PATH);
	ck_assert_int_eq(match(M_GET, "/transactions/", &r, p, &np, allow),
	    ROUTE_NO_PATH);
	ck_assert_int_eq(match(M_GET, "/transactions//restore", &r, p, &np,
	    allow), ROUTE_NO_PATH);
	ck_assert_int_eq(match(M_GET, "", &r, p, &np, allow), ROUTE_NO_PATH);
	ck_assert_int_eq(match(M_GET, "transactions", &r, p, &np, allow),
	    ROUTE_NO_PATH);
	/* R_ROOT rows only match whole paths, never under /api/v1. */
	ck_assert_int_eq(match(M_GET, "/metrics", &r, p, &np, allow),
	    ROUTE_NO_PATH);
}
END_TEST

/* Every row of the real table is reachable with its own method and path. */
START_TEST(test_router_every_row_reachable)
{
	struct fin_arena *a = fin_arena_new(1 << 20);
	const struct route *r;
	const char	*p[MAX_PARAMS];
	size_t		 i, np, k;
	bool		 allow[M__MAX];
	char		 path[256];

	for (i = 0; i < nroutes; i++) {
		const char *s = routes[i].pattern;

		/* Fill each {capture} with a value no literal uses. */
		for (k = 0; *s != '\0' && k < sizeof(path) - 40; s++) {
			if (*s == '{') {
				k += (size_t)snprintf(path + k, sizeof(path) - k,
				    "00000000-0000-4000-8000-000000000000");
				while (*s != '}')
					s++;
			} else
				path[k++] = *s;
		}
		path[k] = '\0';
		ck_assert_msg(router_match(routes, nroutes, routes[i].method,
		    path, (routes[i].flags & R_ROOT) != 0, &r, p, &np, a,
		    allow) == ROUTE_FOUND && r == &routes[i],
		    "row %zu (%s %s) can never match", i,
		    method_name(routes[i].method), routes[i].pattern);
		ck_assert_msg(routes[i].handler != NULL, "row %zu has no handler", i);
		ck_assert_msg((routes[i].flags & (R_PUBLIC | R_AUTH | R_ADMIN)) != 0,
		    "row %zu says nothing about who may call it", i);
	}
	fin_arena_free(a);
}
END_TEST

static Suite *
router_suite(void)
{
	Suite	*s = suite_create("router");
	TCase	*core = tcase_create("core");
	TCase	*table_tc = tcase_create("table");

	tcase_add_test(core, test_router_literal_beats_capture);
	tcase_add_test(core, test_router_405_and_allow);
	tcase_add_test(core, test_router_404);
	tcase_add_test(table_tc, test_router_every_row_reachable);
	suite_add_tcase(s, core);
	suite_add_tcase(s, table_tc);
	return s;
}

FIN_CHECK_MAIN(router_suite)
