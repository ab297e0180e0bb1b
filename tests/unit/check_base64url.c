/*
 * base64url: the RFC 4648 vectors, the URL-safe alphabet, buffer sizes,
 * and libsodium's decoder held to everything the strict form must refuse
 * (padding, foreign characters, white space, impossible lengths,
 * non-canonical trailing bits), since a JWT relies on each encoding being
 * the only one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "unit.h"

static bool
decodes(const char *s)
{
	unsigned char	 out[64];
	size_t		 n = 99;
	bool		 ok;

	ok = fin_base64url_decode(s, strlen(s), out, sizeof(out), &n);
	if (!ok)
		ck_assert_uint_eq(n, 0);
	return ok;
}

START_TEST(test_base64url_rfc4648_vectors)
{
	/* RFC 4648 §10, padding removed. */
	static const char *const v[][2] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
	};
	char		 enc[32];
	unsigned char	 dec[32];
	size_t		 i, n;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		n = fin_base64url_encode((const unsigned char *)v[i][0],
		    strlen(v[i][0]), enc, sizeof(enc));
		ck_assert_uint_eq(n, strlen(v[i][1]));
		ck_assert_str_eq(enc, v[i][1]);
		ck_assert(fin_base64url_decode(v[i][1], strlen(v[i][1]), dec,
		    sizeof(dec), &n));
		ck_assert_uint_eq(n, strlen(v[i][0]));
		ck_assert(memcmp(dec, v[i][0], n) == 0);
	}
}
END_TEST

START_TEST(test_base64url_urlsafe_alphabet)
{
	static const unsigned char in[] = { 0xfb, 0xff, 0xbf };
	char		 enc[8];
	unsigned char	 dec[8];
	size_t		 n;

	ck_assert_uint_eq(fin_base64url_encode(in, 3, enc, sizeof(enc)), 4);
	ck_assert_str_eq(enc, "-_-_");
	ck_assert(fin_base64url_decode("-_-_", 4, dec, sizeof(dec), &n));
	ck_assert_uint_eq(n, 3);
	ck_assert(memcmp(dec, in, 3) == 0);
}
END_TEST

START_TEST(test_base64url_round_trip_lengths)
{
	unsigned char	 in[100], dec[100];
	char		 enc[FIN_BASE64URL_SIZE(100)];
	size_t		 len, i, n, e;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 37 + 11);
	for (len = 0; len <= sizeof(in); len++) {
		e = fin_base64url_encode(in, len, enc, sizeof(enc));
		ck_assert_uint_eq(e + 1, FIN_BASE64URL_SIZE(len));
		ck_assert_uint_eq(strlen(enc), e);
		ck_assert(fin_base64url_decode(enc, e, dec, sizeof(dec), &n));
		ck_assert_uint_eq(n, len);
		ck_assert(memcmp(dec, in, len) == 0);
	}
}
END_TEST

START_TEST(test_base64url_encode_buffer_too_small)
{
	char	 enc[8];

	memset(enc, 'x', sizeof(enc));
	/* "foobar" needs 8 characters and the NUL. */
	ck_assert_uint_eq(fin_base64url_encode((const unsigned char *)"foobar",
	    6, enc, 8), 0);
	ck_assert_str_eq(enc, "");
	ck_assert_uint_eq(fin_base64url_encode((const unsigned char *)"foo",
	    3, enc, 5), 4);
	ck_assert_uint_eq(fin_base64url_encode((const unsigned char *)"foo",
	    3, enc, 4), 0);
	ck_assert_uint_eq(fin_base64url_encode((const unsigned char *)"foo",
	    3, NULL, 0), 0);
}
END_TEST

START_TEST(test_base64url_decode_buffer_too_small)
{
	unsigned char	 dec[3];
	size_t		 n;

	ck_assert(fin_base64url_decode("Zm9v", 4, dec, 3, &n));
	ck_assert(!fin_base64url_decode("Zm9vYg", 6, dec, 3, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert(!fin_base64url_decode("Zm9v", 4, dec, 2, &n));
}
END_TEST

START_TEST(test_base64url_refuses_padding)
{
	ck_assert(decodes("Zg"));
	ck_assert(!decodes("Zg=="));
	ck_assert(!decodes("Zg="));
	ck_assert(!decodes("Zm8="));
	ck_assert(!decodes("Zm9v===="));
	ck_assert(!decodes("="));
}
END_TEST

START_TEST(test_base64url_refuses_foreign_characters)
{
	static const unsigned char in[] = { 0xfb, 0xff };
	char	 buf[8];

	/* The standard alphabet's + and / are not base64url. */
	ck_assert(!decodes("+_8"));
	ck_assert(!decodes("-/8"));
	ck_assert(!decodes("Zm9v."));
	ck_assert(!decodes("Zm 9v"));
	ck_assert(!decodes(" Zm9v"));
	ck_assert(!decodes("Zm9v\n"));
	ck_assert(!decodes("Zm9v\r\n"));
	ck_assert(!decodes("Zm9\xc3\xa9"));
	ck_assert(!decodes("Zm9v*"));
	ck_assert_uint_eq(fin_base64url_encode(in, 2, buf, sizeof(buf)), 3);
	ck_assert_str_eq(buf, "-_8");
	ck_assert(decodes(buf));
}
END_TEST

START_TEST(test_base64url_refuses_embedded_nul)
{
	unsigned char	 dec[8];
	size_t		 n;

	ck_assert(!fin_base64url_decode("Zm\0v", 4, dec, sizeof(dec), &n));
	ck_assert(!fin_base64url_decode("Zm9v\0", 5, dec, sizeof(dec), &n));
}
END_TEST

START_TEST(test_base64url_refuses_impossible_length)
{
	/* 6 bits cannot make a byte: lengths of 1 mod 4 are never produced. */
	ck_assert(!decodes("Z"));
	ck_assert(!decodes("Zm9vY"));
	ck_assert(decodes("Zm9vYg"));
}
END_TEST

START_TEST(test_base64url_refuses_noncanonical_bits)
{
	/*
	 * "f" is Zg: 'g' carries 2 data bits and 4 zero bits.  Zh, Zi, ...
	 * would decode to "f" too if the trailing bits were ignored.
	 */
	ck_assert(decodes("Zg"));
	ck_assert(!decodes("Zh"));
	ck_assert(!decodes("Zv"));
	ck_assert(!decodes("Z_"));
	/* "fo" is Zm8: '8' carries 4 data bits and 2 zero bits. */
	ck_assert(decodes("Zm8"));
	ck_assert(!decodes("Zm9"));
	ck_assert(!decodes("Zm-"));
	ck_assert(decodes("Zm9vYmE"));
	ck_assert(!decodes("Zm9vYmF"));
}
END_TEST

static Suite *
base64url_suite(void)
{
	Suite	*s = suite_create("base64url");
	TCase	*core = tcase_create("core");
	TCase	*strict = tcase_create("strict");

	tcase_add_test(core, test_base64url_rfc4648_vectors);
	tcase_add_test(core, test_base64url_urlsafe_alphabet);
	tcase_add_test(core, test_base64url_round_trip_lengths);
	tcase_add_test(core, test_base64url_encode_buffer_too_small);
	tcase_add_test(core, test_base64url_decode_buffer_too_small);
	tcase_add_test(strict, test_base64url_refuses_padding);
	tcase_add_test(strict, test_base64url_refuses_foreign_characters);
	tcase_add_test(strict, test_base64url_refuses_embedded_nul);
	tcase_add_test(strict, test_base64url_refuses_impossible_length);
	tcase_add_test(strict, test_base64url_refuses_noncanonical_bits);
	suite_add_tcase(s, core);
	suite_add_tcase(s, strict);
	return s;
}

FIN_CHECK_MAIN(base64url_suite)
