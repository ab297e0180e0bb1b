/*
 * Identifiers, time, the bounded integer parser that replaces atoi, and
 * the HMAC.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

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

/* RFC 4231: HMAC-SHA-256 test cases 2 and 6, hex. */
static void
hmac_hex(const void *key, size_t keylen, const char *data, char hex[65])
{
	unsigned char	 mac[FIN_HMAC_SHA256_LEN];

	ck_assert(Fin_hmac_sha256(key, keylen, data, strlen(data), mac));
	sodium_bin2hex(hex, 65, mac, sizeof(mac));
}

START_TEST(test_util_hmac_sha256)
{
	unsigned char	 key[131], mac[FIN_HMAC_SHA256_LEN];
	unsigned char	 ossl[EVP_MAX_MD_SIZE];
	unsigned int	 olen = 0;
	char		 hex[65];
	size_t		 klen;

	hmac_hex("Jefe", 4, "what do ya want for nothing?", hex);
	ck_assert_str_eq(hex,
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* A key longer than the hash's block is hashed first. */
	memset(key, 0xaa, sizeof(key));
	hmac_hex(key, sizeof(key), "Test Using Larger Than Block-Size Key - "
	    "Hash Key First", hex);
	ck_assert_str_eq(hex,
	    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	/* The same MAC OpenSSL computes, for every key length around 64. */
	for (klen = 1; klen <= sizeof(key); klen++) {
		key[klen - 1] = (unsigned char)klen;
		ck_assert(Fin_hmac_sha256(key, klen, "payload", 7, mac));
		ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)klen,
		    (const unsigned char *)"payload", 7, ossl, &olen));
		ck_assert_uint_eq(olen, sizeof(mac));
		ck_assert_mem_eq(mac, ossl, sizeof(mac));
	}
	/* An empty key would let anyone compute the MAC. */
	ck_assert(!Fin_hmac_sha256("", 0, "x", 1, mac));
	ck_assert(!Fin_hmac_sha256(NULL, 0, "x", 1, mac));
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
	tcase_add_test(tc, test_util_hmac_sha256);
	suite_add_tcase(s, tc);
	return s;
}

FIN_CHECK_MAIN(util_suite)
