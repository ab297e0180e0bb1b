/*
 * Feature flag rollouts: deterministic per user, monotonic in the
 * percentage, and close to the percentage over many users.
 */
#include <stdio.h>
#include <string.h>

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

static Suite *
flags_suite(void)
{
	Suite	*s = suite_create("flags");
	TCase	*core = tcase_create("core");

	tcase_add_test(core, test_flags_rollout_close_to_percent);
	tcase_add_test(core, test_flags_deterministic_and_monotonic);
	tcase_add_test(core, test_flags_keys);
	suite_add_tcase(s, core);
	return s;
}

FIN_CHECK_MAIN(flags_suite)
