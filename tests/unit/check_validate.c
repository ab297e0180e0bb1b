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
	/* C1 controls (U+0085 NEL) are controls too; U+00A0 is not. */
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"a\\u0085b\"}", &f),
	    FIN_E_VALIDATION_ERROR);
	ck_assert(has(f, "name"));
	ck_assert_int_eq(run("{\"email\":\"a@b.co\",\"name\":\"a\u00a0b\"}", &f),
	    FIN_OK);
}
END_TEST

static enum fin_err
email(const char *addr)
{
	struct json_object *f;
	char		 body[512];

	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"name\":\"n\"}", addr);
	return run(body, &f);
}

/* Login takes what signup took before the address rule was tightened. */
START_TEST(test_validate_email_login_is_loose)
{
	static const struct fin_field login[] = {
		{ "email", FIN_F_EMAIL_LOGIN, true, 3, 254, false },
		{ NULL, 0, false, 0, 0, false },
	};
	const char *old[] = { "a@b..com", "a@x_y.com", "a;b@x.com", "\u00c4@X.COM" };
	const char *never[] = { "a b@x.com", "a@x", "@x.com", "a@b@c.com", "a@x.com." };
	struct json_object *o, *f;
	char	 body[128];
	size_t	 i;

	for (i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		snprintf(body, sizeof(body), "{\"email\":\" %s \"}", old[i]);
		ck_assert_int_eq(fin_json_parse_object(a, body, strlen(body), &o), FIN_OK);
		ck_assert_msg(fin_validate(a, login, o, v, &f) == FIN_OK, "refused %s", old[i]);
	}
	ck_assert_str_eq(v[0].s, "\u00c4@x.com");	/* trimmed, ASCII lower-cased */
	for (i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		snprintf(body, sizeof(body), "{\"email\":\"%s\"}", never[i]);
		ck_assert_int_eq(fin_json_parse_object(a, body, strlen(body), &o), FIN_OK);
		ck_assert_msg(fin_validate(a, login, o, v, &f) == FIN_E_VALIDATION_ERROR,
		    "accepted %s", never[i]);
	}
}
END_TEST

START_TEST(test_validate_email_shape)
{
	const char *good[] = { "a@b.co", "first.last+tag@sub.example.com",
	    "o'neil@x-y.example", "a!#$%&'*+/=?^_`{|}~-@example.com",
	    "  Foo@Example.COM ", "x@1.example" };
	const char *bad[] = { "a@b..com", "a@-x.com", "a@x-.com", "a@x_y.com",
	    "a;b@x.com", ".a@x.com", "a.@x.com", "a..b@x.com", "a@x.com.",
	    "a@.x.com", "a@localhost", "a@1.2.3.4", "a@[1.2.3.4]",
	    "\\\"q\\\"@x.com", "a\u200b@x.com", "a@x.com\u00a0",
	    "\u00c4@x.com", "a@b@c.com", "a@x.c\u00f6m", "@x.com",
	    "a@x.com,b@y.com" };
	char	 local[96], label[80];
	size_t	 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(email(good[i]) == FIN_OK, "refused %s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(email(bad[i]) == FIN_E_VALIDATION_ERROR,
		    "accepted %s", bad[i]);
	/* 64 bytes of local part and 63 of a label, not one more. */
	memset(local, 'l', 65);
	memset(label, 'd', 64);
	snprintf(local + 64, 16, "@x.com");
	ck_assert_int_eq(email(local), FIN_OK);
	snprintf(local + 64, 16, "l@x.com");
	ck_assert_int_eq(email(local), FIN_E_VALIDATION_ERROR);
	label[63] = '\0';
	snprintf(local, sizeof(local), "a@%s.com", label);
	ck_assert_int_eq(email(local), FIN_OK);
	label[63] = 'd';
	label[64] = '\0';
	snprintf(local, sizeof(local), "a@%s.com", label);
	ck_assert_int_eq(email(local), FIN_E_VALIDATION_ERROR);
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
	/* Newer than the iso-codes list the table started from. */
	ck_assert_int_eq(fin_currency_minor_units("ZWG"), 2);
	ck_assert_int_eq(fin_currency_minor_units("XCG"), 2);
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
	tcase_add_test(limits, test_validate_email_shape);
	tcase_add_test(limits, test_validate_email_login_is_loose);
	tcase_add_test(limits, test_validate_dates);
	tcase_add_test(limits, test_validate_utf8);
	suite_add_tcase(s, core);
	suite_add_tcase(s, limits);
	return s;
}

FIN_CHECK_MAIN(validate_suite)
