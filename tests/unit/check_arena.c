/*
 * The request arena: alignment, growth past one block, the hard cap,
 * deferred destructors in reverse order, and reuse after reset.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "unit.h"

static int	 order[8];
static int	 norder;

static void
record(void *p)
{
	order[norder++] = *(int *)p;
}

START_TEST(test_arena_alignment_and_strings)
{
	struct fin_arena *a = fin_arena_new(1 << 20);
	char	*s;
	void	*p;

	ck_assert_ptr_nonnull(a);
	p = fin_arena_alloc(a, 3);
	ck_assert_uint_eq((uintptr_t)p % 16, 0);
	p = fin_arena_alloc(a, 5);
	ck_assert_uint_eq((uintptr_t)p % 16, 0);
	s = fin_arena_strdup(a, "hello");
	ck_assert_str_eq(s, "hello");
	s = fin_arena_strndup(a, "hello", 2);
	ck_assert_str_eq(s, "he");
	s = fin_arena_printf(a, "%s-%d", "x", 42);
	ck_assert_str_eq(s, "x-42");
	fin_arena_free(a);
}
END_TEST

START_TEST(test_arena_grows_past_a_block)
{
	struct fin_arena *a = fin_arena_new(4 << 20);
	char	*big;
	int	 i;

	for (i = 0; i < 100; i++)
		ck_assert_ptr_nonnull(fin_arena_alloc(a, 10000));
	big = fin_arena_alloc(a, 1 << 20);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', 1 << 20);
	fin_arena_free(a);
}
END_TEST

START_TEST(test_arena_cap_refuses)
{
	struct fin_arena *a = fin_arena_new(256 * 1024);

	ck_assert_ptr_null(fin_arena_alloc(a, 512 * 1024));
	ck_assert_ptr_null(fin_arena_alloc(a, SIZE_MAX));
	ck_assert_ptr_nonnull(fin_arena_alloc(a, 1000));
	fin_arena_free(a);
}
END_TEST

START_TEST(test_arena_defer_runs_newest_first)
{
	struct fin_arena *a = fin_arena_new(1 << 20);
	static int one = 1, two = 2, three = 3;

	norder = 0;
	ck_assert_int_eq(fin_arena_defer(a, record, &one), FIN_OK);
	ck_assert_int_eq(fin_arena_defer(a, record, &two), FIN_OK);
	ck_assert_int_eq(fin_arena_defer(a, record, &three), FIN_OK);
	fin_arena_reset(a);
	ck_assert_int_eq(norder, 3);
	ck_assert_int_eq(order[0], 3);
	ck_assert_int_eq(order[2], 1);
	/* Reset ran them once: a second reset runs nothing. */
	fin_arena_reset(a);
	ck_assert_int_eq(norder, 3);
	fin_arena_free(a);
}
END_TEST

START_TEST(test_arena_reset_reuses_memory)
{
	struct fin_arena *a = fin_arena_new(1 << 20);
	void	*p1, *p2;

	p1 = fin_arena_alloc(a, 100);
	ck_assert_uint_gt(fin_arena_used(a), 0);
	fin_arena_reset(a);
	ck_assert_uint_eq(fin_arena_used(a), 0);
	p2 = fin_arena_alloc(a, 100);
	ck_assert_ptr_eq(p1, p2);
	fin_arena_free(a);
}
END_TEST

START_TEST(test_arena_json_put_at_reset)
{
	struct fin_arena *a = fin_arena_new(1 << 20);
	struct json_object *o;

	o = fin_arena_json(a, json_object_new_object());
	ck_assert_ptr_nonnull(o);
	json_object_object_add(o, "k", json_object_new_int(1));
	fin_arena_free(a);	/* leak checkers see the put */
}
END_TEST

static Suite *
arena_suite(void)
{
	Suite	*s = suite_create("arena");
	TCase	*core = tcase_create("core");
	TCase	*limits = tcase_create("limits");

	tcase_add_test(core, test_arena_alignment_and_strings);
	tcase_add_test(core, test_arena_defer_runs_newest_first);
	tcase_add_test(core, test_arena_reset_reuses_memory);
	tcase_add_test(core, test_arena_json_put_at_reset);
	tcase_add_test(limits, test_arena_grows_past_a_block);
	tcase_add_test(limits, test_arena_cap_refuses);
	suite_add_tcase(s, core);
	suite_add_tcase(s, limits);
	return s;
}

FIN_CHECK_MAIN(arena_suite)
