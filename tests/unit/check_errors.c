/*
 * The error table: every enum value has a status, an UPPER_SNAKE code and
 * a sentence, so http_error() can never write an empty field.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "unit.h"

START_TEST(test_errors_every_value_complete)
{
	int	 e;
	size_t	 i;

	for (e = 1; e < FIN_E__MAX; e++) {
		const char *code = fin_err_code((enum fin_err)e);
		const char *msg = fin_err_message((enum fin_err)e);
		int status = fin_err_status((enum fin_err)e);

		ck_assert_msg(status >= 400 && status <= 599, "status of %d", e);
		ck_assert_ptr_nonnull(code);
		ck_assert_uint_gt(strlen(code), 0);
		for (i = 0; code[i] != '\0'; i++)
			ck_assert(isupper((unsigned char)code[i]) || code[i] == '_');
		ck_assert_uint_gt(strlen(msg), 0);
		ck_assert_int_eq(msg[strlen(msg) - 1], '.');
	}
}
END_TEST

START_TEST(test_errors_known_rows)
{
	ck_assert_int_eq(fin_err_status(FIN_E_INVALID_JSON), 400);
	ck_assert_str_eq(fin_err_code(FIN_E_INVALID_JSON), "INVALID_JSON");
	ck_assert_int_eq(fin_err_status(FIN_E_UNSUPPORTED_API_VERSION), 404);
	ck_assert_int_eq(fin_err_status(FIN_E_ACCOUNT_LOCKED), 423);
	ck_assert_int_eq(fin_err_status(FIN_E_RATE_LIMITED), 429);
	ck_assert_str_eq(fin_err_message(FIN_E_EMAIL_TAKEN),
	    "An account with this email already exists.");
}
END_TEST

START_TEST(test_errors_out_of_range_is_500)
{
	ck_assert_int_eq(fin_err_status((enum fin_err)-1), 500);
	ck_assert_int_eq(fin_err_status(FIN_E__MAX), 500);
	ck_assert_str_eq(fin_err_code((enum fin_err)9999), "INTERNAL_ERROR");
}
END_TEST

static Suite *
errors_suite(void)
{
	Suite	*s = suite_create("errors");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_errors_every_value_complete);
	tcase_add_test(tc, test_errors_known_rows);
	tcase_add_test(tc, test_errors_out_of_range_is_500);
	suite_add_tcase(s, tc);
	return s;
}

FIN_CHECK_MAIN(errors_suite)
