/*
 * Strict request bodies: what json-c would accept and the API must not.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "unit.h"

static enum fin_err
parse(const char *s)
{
	struct fin_arena *a = fin_arena_new(1 << 20);
	struct json_object *o;
	enum fin_err e;

	e = fin_json_parse_object(a, s, strlen(s), &o);
	fin_arena_free(a);
	return e;
}

START_TEST(test_json_accepts_objects)
{
	struct fin_arena *a = fin_arena_new(1 << 20);
	struct json_object *o, *v;
	const char *s = " {\"email\": \"a@b.c\", \"n\": [1, {\"k\": 2}]}\n";

	ck_assert_int_eq(fin_json_parse_object(a, s, strlen(s), &o), FIN_OK);
	ck_assert(json_object_object_get_ex(o, "email", &v));
	ck_assert_str_eq(json_object_get_string(v), "a@b.c");
	fin_arena_free(a);
	ck_assert_int_eq(parse("{}"), FIN_OK);
	ck_assert_int_eq(parse("{\"a\":\"x:y\",\"b\":\"\\\":\"}"), FIN_OK);
}
END_TEST

START_TEST(test_json_refuses_malformed)
{
	ck_assert_int_eq(parse(""), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":1,}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{'a':1}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":1} x"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":1}{}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":NaN}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":\"\xff\"}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":\"\xc3\"}"), FIN_E_INVALID_JSON);
	/* Overlong '/', a surrogate, and a raw control byte. */
	ck_assert_int_eq(parse("{\"a\":\"\xc0\xaf\"}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":\"\xed\xa0\x80\"}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":\"x\ny\"}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":\"\t\"}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":\"\x01\"}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\x1f\":1}"), FIN_E_INVALID_JSON);
	/* Escaped, or between tokens, they are fine. */
	ck_assert_int_eq(parse("{\n\t\"a\":\r\n\"x\\ny\\t\\u0001\"}"), FIN_OK);
	/* Lone surrogates in escapes; a proper pair is fine. */
	ck_assert_int_eq(parse("{\"a\":\"\\ud800\"}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":\"\\udc00x\"}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":\"\\ud800\\u0041\"}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":\"\\ud83c\\udf89\"}"), FIN_OK);
	ck_assert_int_eq(parse("{\"a\\\"b\":\"\\\\\"}"), FIN_OK);
}
END_TEST

START_TEST(test_json_refuses_non_objects)
{
	ck_assert_int_eq(parse("[]"), FIN_E_INVALID_BODY);
	ck_assert_int_eq(parse("[{\"a\":1}]"), FIN_E_INVALID_BODY);
	ck_assert_int_eq(parse("\"str\""), FIN_E_INVALID_BODY);
	ck_assert_int_eq(parse("42"), FIN_E_INVALID_BODY);
	ck_assert_int_eq(parse("null"), FIN_E_INVALID_BODY);
}
END_TEST

START_TEST(test_json_refuses_duplicate_keys)
{
	ck_assert_int_eq(parse("{\"a\":1,\"a\":2}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"o\":{\"a\":1,\"a\":1}}"), FIN_E_INVALID_JSON);
	ck_assert_int_eq(parse("{\"a\":1,\"b\":{\"a\":1}}"), FIN_OK);
}
END_TEST

static void
nested(char *out, size_t depth)
{
	size_t	 i, n = 0;

	memcpy(out, "{\"a\":", 5);
	n = 5;
	for (i = 0; i < depth; i++)
		out[n++] = '[';
	for (i = 0; i < depth; i++)
		out[n++] = ']';
	out[n++] = '}';
	out[n] = '\0';
}

START_TEST(test_json_depth_capped)
{
	char	 doc[128];

	nested(doc, 5);
	ck_assert_int_eq(parse(doc), FIN_OK);
	nested(doc, FIN_JSON_MAX_DEPTH + 5);
	ck_assert_int_eq(parse(doc), FIN_E_INVALID_JSON);
}
END_TEST

/* {"a":[<n> copies of item, comma-separated]}, malloc'ed. */
static char *
repeated(const char *item, size_t n)
{
	size_t	 i, len = strlen(item), at = 6;
	char	*s;

	s = malloc(6 + n * (len + 1) + 3);
	ck_assert_ptr_nonnull(s);
	memcpy(s, "{\"a\":[", 6);
	for (i = 0; i < n; i++) {
		if (i > 0)
			s[at++] = ',';
		memcpy(s + at, item, len);
		at += len;
	}
	memcpy(s + at, "]}", 3);
	return s;
}

/*
 * A body of many small values (each its own allocation in json-c) is
 * refused before json-c builds them: a 1 MiB body of "{}," cost a worker
 * 280 MB, kept after the request.  Commas in strings do not count.
 */
START_TEST(test_json_values_capped)
{
	char	*s;

	s = repeated("{}", 500);
	ck_assert_int_eq(parse(s), FIN_OK);
	free(s);
	s = repeated("\",,,,,,,,\"", 500);
	ck_assert_int_eq(parse(s), FIN_OK);
	free(s);
	s = repeated("{}", 5000);
	ck_assert_int_eq(parse(s), FIN_E_INVALID_JSON);
	free(s);
	s = repeated("1", 5000);
	ck_assert_int_eq(parse(s), FIN_E_INVALID_JSON);
	free(s);
	s = repeated("[]", (1 << 20) / 3);
	ck_assert_int_eq(parse(s), FIN_E_INVALID_JSON);
	free(s);
	ck_assert_int_eq(parse("{\"a\":\",,,,,,,,,,,,,,,,,,,,{{{{{{[[[[[[[\"}"), FIN_OK);
}
END_TEST

static Suite *
json_suite(void)
{
	Suite	*s = suite_create("json");
	TCase	*core = tcase_create("core");
	TCase	*errors = tcase_create("errors");

	tcase_add_test(core, test_json_accepts_objects);
	tcase_add_test(errors, test_json_refuses_malformed);
	tcase_add_test(errors, test_json_refuses_non_objects);
	tcase_add_test(errors, test_json_refuses_duplicate_keys);
	tcase_add_test(errors, test_json_depth_capped);
	tcase_add_test(errors, test_json_values_capped);
	suite_add_tcase(s, core);
	suite_add_tcase(s, errors);
	return s;
}

FIN_CHECK_MAIN(json_suite)
