/*
 * Body validation: types, bounds in characters, dates, currencies, NUL
 * and unknown fields, all reported at once.
 */
#include <string.h>

#include "internal.h"
#include "unit.h"

static const struct fin_field spec[] = {
	{ "email",    FIN_F_EMAIL,    true,  3, 254, false },
	{ "name",     FIN_F_TEXT,     true,  1, 5,   false },
	{ "amount",   FIN_F_INT64,    false, -9007199254740991LL, 9007199254740991LL, false },
	{ "currency", FIN_F_CURRENCY, false, 3, 3,   false },
	{ "on",       FIN_F_DATE,     false, 10, 10, false },
	{ "flag",     FIN_F_BOOL,     false, 0, 0,   false },
	{ NULL,       0,              false, 0, 0,   false },
};

static struct fin_arena *a;
static struct fin_value v[8];

static enum fin_err
run(const char *body, struct json_object **fields)
{
	struct json_object *o;

	ck_assert_int_eq(fin_json_parse_object(a, body, strlen(body), &o), FIN_OK);
	return fin_validate(a, spec, o, v, fields);
}

static bool
has(struct json_object *fields, const char *name)
{
	return fields != NULL && json_object_object_get_ex(fields, name, NULL);
}

static void
setup(void)
{
	a = fin_arena_new(1 << 20);
}

static void
teardown(void)
{
	fin_arena_free(a);
}

START_TEST(test_validate_good_body_converts)
{
	struct json_object *f;

	ck_assert_int_eq(run("{\"email\":\"  Foo@Example.COM \",\"name\":\" Zoë \","
	    "\"amount\":-1250,\"currency\":\"EUR\",\"on\":\"2024-02-29\","
	    "\"flag\":true}", &f), FIN_OK);
	ck_assert_str_eq(v[0].s, "foo@example.com");
	ck_assert_str_eq(v[1].s, "Zoë");
	ck_assert(v[2].present && v[2].i == -1250);
	ck_assert_str_eq(v[3].s, "EUR");
	ck_assert(v[5].b);
}
END_TEST

START_TEST(test_validate_reports_every_field)
{
	struct json_object *f;

	ck_assert_int_eq(run("{\"name\":\"toolong\",\"amount\":1.5,"
	    "\"currency\":\"eur\",\"on\":\"2026-02-30\",\"flag\":1,\"x\":0}", &f),
	    FIN_E_VALIDATION_ERROR);
	ck_assert(has(f, "email"));	/* missing */
	ck_assert(has(f, "name"));	/* 7 characters > 5 */
	ck_assert(has(f, "amount"));	/* a float */
	ck_assert(has(f, "currency"));	/* lower case */
	ck_assert(has(f, "on"));	/* no such day */
	ck_assert(has(f, "flag"));	/* not a bool */
	ck_assert(has(f, "x"));		/* unknown */
}
END_TEST

START_TEST(test_validate_money_limits)
{
	struct json_object *f;

	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"n\","
	    "\"amount\":9007199254740991}", &f), FIN_OK);
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"n\","
	    "\"amount\":9007199254740992}", &f), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"n\","
	    "\"amount\":-9007199254740992}", &f), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"n\","
	    "\"amount\":\"12\"}", &f), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"n\","
	    "\"amount\":1e3}", &f), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"n\","
	    "\"amount\":99999999999999999999999}", &f), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"n\","
	    "\"currency\":\"XXX\"}", &f), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"n\","
	    "\"currency\":\"JPY\"}", &f), FIN_OK);
}
END_TEST

START_TEST(test_validate_strings)
{
	struct json_object *f;

	/* \u0000 inside a string is refused, not cut. */
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"a\\u0000b\"}", &f),
	    FIN_E_VALIDATION_ERROR);
	ck_assert(has(f, "name"));
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"\\t\"}", &f),
	    FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"a\\nb\"}", &f),
	    FIN_E_VALIDATION_ERROR);
	/* Five characters, ten bytes. */
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"ééééé\"}", &f), FIN_OK);
	ck_assert_int_eq(run("{\"email\":\"no-at-sign\",\"name\":\"n\"}", &f),
	    FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(run("{\"email\":\"a b@c.de\",\"name\":\"n\"}", &f),
	    FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(run("{\"email\":[\"a@b.co\"],\"name\":\"n\"}", &f),
	    FIN_E_VALIDATION_ERROR);
}
END_TEST

START_TEST(test_validate_dates)
{
	ck_assert(fin_valid_date("2024-02-29"));
	ck_assert(!fin_valid_date("2023-02-29"));
	ck_assert(!fin_valid_date("2100-02-29"));
	ck_assert(fin_valid_date("2000-02-29"));
	ck_assert(!fin_valid_date("2026-04-31"));
	ck_assert(!fin_valid_date("2026-13-01"));
	ck_assert(!fin_valid_date("2026-1-01"));
	ck_assert(!fin_valid_date("2026-01-01T"));
	ck_assert(!fin_valid_date("yesterday"));
	ck_assert_int_eq(fin_currency_minor_units("EUR"), 2);
	ck_assert_int_eq(fin_currency_minor_units("JPY"), 0);
	ck_assert_int_eq(fin_currency_minor_units("BHD"), 3);
	ck_assert_int_eq(fin_currency_minor_units("CLF"), 4);
	ck_assert_int_eq(fin_currency_minor_units("eur"), -1);
	ck_assert_int_eq(fin_currency_minor_units("HRK"), -1);
	ck_assert_int_eq(fin_currency_minor_units("EURO"), -1);
}
END_TEST

START_TEST(test_validate_utf8)
{
	ck_assert(fin_utf8_valid("Café 東京 🎉", strlen("Café 東京 🎉")));
	ck_assert(!fin_utf8_valid("\xc0\xaf", 2));		/* overlong */
	ck_assert(!fin_utf8_valid("\xed\xa0\x80", 3));		/* surrogate */
	ck_assert(!fin_utf8_valid("\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	ck_assert(!fin_utf8_valid("\xe2\x82", 2));		/* truncated */
	ck_assert(!fin_utf8_valid("a\0b", 3));
	ck_assert_uint_eq(fin_utf8_length("Café", 5), 4);
}
END_TEST

static Suite *
validate_suite(void)
{
	Suite	*s = suite_create("validate");
	TCase	*core = tcase_create("core");
	TCase	*limits = tcase_create("limits");

	tcase_add_checked_fixture(core, setup, teardown);
	tcase_add_checked_fixture(limits, setup, teardown);
	tcase_add_test(core, test_validate_good_body_converts);
	tcase_add_test(core, test_validate_reports_every_field);
	tcase_add_test(limits, test_validate_money_limits);
	tcase_add_test(limits, test_validate_strings);
	tcase_add_test(limits, test_validate_dates);
	tcase_add_test(limits, test_validate_utf8);
	suite_add_tcase(s, core);
	suite_add_tcase(s, limits);
	return s;
}

FIN_CHECK_MAIN(validate_suite)
