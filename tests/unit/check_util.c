/*
 * Identifiers, time and the bounded integer parser that replaces atoi.
 */
#include <string.h>

#include "internal.h"
#include "unit.h"

START_TEST(test_util_request_id)
{
	char	 long_id[70];

	ck_assert(fin_valid_request_id("abc.DEF_123-x"));
	ck_assert(fin_valid_request_id("a"));
	ck_assert(!fin_valid_request_id(""));
	ck_assert(!fin_valid_request_id(NULL));
	ck_assert(!fin_valid_request_id("has space"));
	ck_assert(!fin_valid_request_id("<script>"));
	ck_assert(!fin_valid_request_id("new\nline"));
	memset(long_id, 'a', 64);
	long_id[64] = '\0';
	ck_assert(fin_valid_request_id(long_id));
	long_id[64] = 'a';
	long_id[65] = '\0';
	ck_assert(!fin_valid_request_id(long_id));
}
END_TEST

START_TEST(test_util_uuid_v4)
{
	char	 a[37], b[37];
	int	 i;

	fin_uuid_v4(b);
	/* Random bits must never leak into the version or variant. */
	for (i = 0; i < 256; i++) {
		fin_uuid_v4(a);
		ck_assert(fin_valid_uuid(a));
		ck_assert_str_ne(a, b);
		ck_assert_int_eq(a[14], '4');
		ck_assert(strchr("89ab", a[19]) != NULL);
		memcpy(b, a, sizeof(b));
	}
	ck_assert(!fin_valid_uuid("not-a-uuid"));
	ck_assert(!fin_valid_uuid("123e4567-e89b-12d3-a456-42661417400"));
	ck_assert(!fin_valid_uuid("123e4567-e89b-12d3-a456-4266141740000"));
	ck_assert(!fin_valid_uuid("123e4567xe89b-12d3-a456-426614174000"));
	ck_assert(fin_valid_uuid("123e4567-e89b-12d3-a456-426614174000"));
}
END_TEST

START_TEST(test_util_rfc3339)
{
	char	 out[32];

	fin_time_rfc3339(0, out);
	ck_assert_str_eq(out, "1970-01-01T00:00:00Z");
	fin_time_rfc3339(1795515300, out);
	ck_assert_str_eq(out, "2026-11-24T10:15:00Z");
}
END_TEST

START_TEST(test_util_parse_int64)
{
	int64_t	 v;

	ck_assert(fin_parse_int64("0", 0, 10, &v) && v == 0);
	ck_assert(fin_parse_int64("-5", -10, 10, &v) && v == -5);
	ck_assert(fin_parse_int64("9223372036854775807", 0, INT64_MAX, &v) &&
	    v == INT64_MAX);
	ck_assert(fin_parse_int64("-9223372036854775808", INT64_MIN, 0, &v) &&
	    v == INT64_MIN);
	ck_assert(!fin_parse_int64("9223372036854775808", 0, INT64_MAX, &v));
	ck_assert(!fin_parse_int64("11", 0, 10, &v));
	ck_assert(!fin_parse_int64("", 0, 10, &v));
	ck_assert(!fin_parse_int64("-", -10, 10, &v));
	ck_assert(!fin_parse_int64("+1", 0, 10, &v));
	ck_assert(!fin_parse_int64(" 1", 0, 10, &v));
	ck_assert(!fin_parse_int64("1 ", 0, 10, &v));
	ck_assert(!fin_parse_int64("01", 0, 10, &v));
	ck_assert(!fin_parse_int64("1e3", 0, 10000, &v));
	ck_assert(!fin_parse_int64("0x10", 0, 100, &v));
	ck_assert(!fin_parse_int64(NULL, 0, 100, &v));
}
END_TEST

static Suite *
util_suite(void)
{
	Suite	*s = suite_create("util");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_util_request_id);
	tcase_add_test(tc, test_util_uuid_v4);
	tcase_add_test(tc, test_util_rfc3339);
	tcase_add_test(tc, test_util_parse_int64);
	suite_add_tcase(s, tc);
	return s;
}

FIN_CHECK_MAIN(util_suite)
