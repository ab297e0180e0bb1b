/*
 * Passwords: argon2id hashing and verification, rehash on changed limits,
 * the constant-cost dummy verification, and the policy (length in code
 * points, valid UTF-8, the common-password list).  The hash limits are
 * libsodium's minimum so that the suite stays fast.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "unit.h"

/* The list itself, to walk it whole (it is a static array). */
#include "common_passwords.h"

static struct fin_config cfg;

static void
setup(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.pwhash_opslimit = 1;
	cfg.pwhash_memlimit = 8192;
}

/* n copies of the UTF-8 text unit, NUL-terminated, malloc'ed. */
static char *
repeat(const char *unit, size_t n)
{
	size_t	 ul = strlen(unit), i;
	char	*s;

	s = malloc(ul * n + 1);
	ck_assert_ptr_nonnull(s);
	for (i = 0; i < n; i++)
		memcpy(s + i * ul, unit, ul);
	s[ul * n] = '\0';
	return s;
}

static enum fin_err
policy(const char *pw)
{
	const char	*why = "unset";
	enum fin_err	 e;

	e = fin_password_check_policy(pw, &why);
	if (e == FIN_OK)
		ck_assert_ptr_null(why);
	else
		ck_assert(why != NULL && why[0] != '\0');
	return e;
}

static enum fin_err
policy_repeat(const char *unit, size_t n)
{
	char		*s = repeat(unit, n);
	enum fin_err	 e;

	e = policy(s);
	free(s);
	return e;
}

/* ------------------------------------------------------------------ */
/* core                                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_password_round_trip)
{
	char	 hash[FIN_PASSWORD_HASH_MAX];
	bool	 ok, rehash;

	ck_assert_int_eq(fin_password_hash(&cfg, "correct horse battery",
	    hash), FIN_OK);
	ck_assert_int_eq(fin_password_verify(&cfg, hash,
	    "correct horse battery", &ok, &rehash), FIN_OK);
	ck_assert(ok);
	ck_assert(!rehash);
}
END_TEST

START_TEST(test_password_wrong_refused)
{
	char	 hash[FIN_PASSWORD_HASH_MAX];
	bool	 ok = true, rehash = true;

	ck_assert_int_eq(fin_password_hash(&cfg, "correct horse battery",
	    hash), FIN_OK);
	ck_assert_int_eq(fin_password_verify(&cfg, hash,
	    "correct horse batterY", &ok, &rehash), FIN_OK);
	ck_assert(!ok);
	ck_assert(!rehash);
	ck_assert_int_eq(fin_password_verify(&cfg, hash, "", &ok, &rehash),
	    FIN_OK);
	ck_assert(!ok);
}
END_TEST

START_TEST(test_password_hash_is_argon2id)
{
	char	 a[FIN_PASSWORD_HASH_MAX], b[FIN_PASSWORD_HASH_MAX];

	ck_assert_int_eq(fin_password_hash(&cfg, "Password123!", a), FIN_OK);
	ck_assert(strncmp(a, "$argon2id$", 10) == 0);
	ck_assert_ptr_nonnull(strstr(a, "$m=8,t=1,p=1$"));
	/* Salted: the same password never hashes the same twice. */
	ck_assert_int_eq(fin_password_hash(&cfg, "Password123!", b), FIN_OK);
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_password_needs_rehash_when_limits_change)
{
	char	 hash[FIN_PASSWORD_HASH_MAX];
	bool	 ok, rehash;

	ck_assert_int_eq(fin_password_hash(&cfg, "Password123!", hash), FIN_OK);
	cfg.pwhash_opslimit = 2;
	ck_assert_int_eq(fin_password_verify(&cfg, hash, "Password123!", &ok,
	    &rehash), FIN_OK);
	ck_assert(ok);
	ck_assert(rehash);
	cfg.pwhash_opslimit = 1;
	cfg.pwhash_memlimit = 16384;
	ck_assert_int_eq(fin_password_verify(&cfg, hash, "Password123!", &ok,
	    &rehash), FIN_OK);
	ck_assert(ok);
	ck_assert(rehash);
	/* A wrong password says nothing about the hash. */
	ck_assert_int_eq(fin_password_verify(&cfg, hash, "Password124!", &ok,
	    &rehash), FIN_OK);
	ck_assert(!ok);
	ck_assert(!rehash);
}
END_TEST

START_TEST(test_password_corrupt_hash_is_an_error)
{
	char	 hash[FIN_PASSWORD_HASH_MAX];
	bool	 ok = true, rehash = true;

	ck_assert_int_eq(fin_password_verify(&cfg, "", "x", &ok, &rehash),
	    FIN_E_INTERNAL_ERROR);
	ck_assert(!ok);
	ck_assert_int_eq(fin_password_verify(&cfg, "$2b$10$abcdefghijklmnop",
	    "x", &ok, &rehash), FIN_E_INTERNAL_ERROR);
	ck_assert_int_eq(fin_password_verify(&cfg, NULL, "x", &ok, &rehash),
	    FIN_E_INTERNAL_ERROR);
	/* Not terminated within crypto_pwhash_STRBYTES. */
	memset(hash, 'a', sizeof(hash));
	memcpy(hash, "$argon2id$", 10);
	ck_assert_int_eq(fin_password_verify(&cfg, hash, "x", &ok, &rehash),
	    FIN_E_INTERNAL_ERROR);
	/* Argon2id-shaped but mangled: a wrong password, not a crash. */
	ck_assert_int_eq(fin_password_verify(&cfg, "$argon2id$v=19$m=8,t=1,"
	    "p=1$AAAA$BBBB", "x", &ok, &rehash), FIN_OK);
	ck_assert(!ok);
}
END_TEST

START_TEST(test_password_bad_limits_are_an_error)
{
	char	 hash[FIN_PASSWORD_HASH_MAX];

	cfg.pwhash_memlimit = 1024;
	ck_assert_int_eq(fin_password_hash(&cfg, "Password123!", hash),
	    FIN_E_INTERNAL_ERROR);
	cfg.pwhash_memlimit = 8192;
	cfg.pwhash_opslimit = 0;
	ck_assert_int_eq(fin_password_hash(&cfg, "Password123!", hash),
	    FIN_E_INTERNAL_ERROR);
}
END_TEST

START_TEST(test_password_verify_dummy)
{
	/* Nothing to observe but that it runs, again, and with new limits. */
	fin_password_verify_dummy(&cfg, "Password123!");
	fin_password_verify_dummy(&cfg, "another one");
	cfg.pwhash_memlimit = 16384;
	fin_password_verify_dummy(&cfg, "Password123!");
	fin_password_verify_dummy(&cfg, NULL);
	fin_password_verify_dummy(NULL, "x");
}
END_TEST

/* ------------------------------------------------------------------ */
/* policy                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_password_policy_length)
{
	ck_assert_int_eq(policy("kx7#pq2"), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(policy("kx7#pq2m"), FIN_OK);
	ck_assert_int_eq(policy(""), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(policy_repeat("k", 128), FIN_OK);
	ck_assert_int_eq(policy_repeat("k", 129), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(policy_repeat("k", 100000), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(policy(NULL), FIN_E_VALIDATION_ERROR);
}
END_TEST

START_TEST(test_password_policy_counts_characters)
{
	/* é is 2 bytes, € 3, U+1F511 (key) 4: each one character. */
	ck_assert_int_eq(policy_repeat("\xc3\xa9", 7), FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(policy_repeat("\xc3\xa9", 8), FIN_OK);
	ck_assert_int_eq(policy_repeat("\xe2\x82\xac", 128), FIN_OK);
	ck_assert_int_eq(policy_repeat("\xe2\x82\xac", 129),
	    FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(policy_repeat("\xf0\x9f\x94\x91", 128), FIN_OK);
	ck_assert_int_eq(policy_repeat("\xf0\x9f\x94\x91", 129),
	    FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(policy_repeat("\xf0\x9f\x94\x91", 2),
	    FIN_E_VALIDATION_ERROR);
	/* 4 code points in 8 bytes is too short. */
	ck_assert_int_eq(policy("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"),
	    FIN_E_VALIDATION_ERROR);
	ck_assert_int_eq(policy("p\xc3\xa4ssw\xc3\xb6rd"), FIN_OK);
}
END_TEST

START_TEST(test_password_policy_invalid_utf8)
{
	static const char *const bad[] = {
		"abcdefg\xff",			/* never valid */
		"abcdefg\x80",			/* lone continuation */
		"abcdefg\xc3",			/* truncated 2-byte */
		"abcdefg\xe2\x82",		/* truncated 3-byte */
		"abcdefg\xc0\xaf",		/* overlong '/' */
		"abcdefg\xc1\xbf",		/* overlong */
		"abcdefg\xe0\x80\xaf",		/* overlong 3-byte */
		"abcdefg\xf0\x80\x80\xaf",	/* overlong 4-byte */
		"abcdefg\xed\xa0\x80",		/* surrogate U+D800 */
		"abcdefg\xed\xbf\xbf",		/* surrogate U+DFFF */
		"abcdefg\xf4\x90\x80\x80",	/* U+110000 */
		"abcdefg\xf5\x80\x80\x80",
		"abcdefg\xc3\x28",		/* bad continuation */
	};
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(policy(bad[i]) == FIN_E_VALIDATION_ERROR,
		    "invalid UTF-8 #%zu accepted", i);
	/* The edges that are valid. */
	ck_assert_int_eq(policy("abcdefg\xed\x9f\xbf"), FIN_OK);	/* U+D7FF */
	ck_assert_int_eq(policy("abcdefg\xee\x80\x80"), FIN_OK);	/* U+E000 */
	ck_assert_int_eq(policy("abcdefg\xf4\x8f\xbf\xbf"), FIN_OK);	/* U+10FFFF */
	ck_assert_int_eq(policy("abcdefg\xdf\xbf"), FIN_OK);		/* U+07FF */
}
END_TEST

START_TEST(test_password_policy_common)
{
	const char	*why = NULL;

	ck_assert_int_eq(fin_password_check_policy("password", &why),
	    FIN_E_WEAK_PASSWORD);
	ck_assert_str_eq(why, "is too common");
	ck_assert_int_eq(policy("123456789"), FIN_E_WEAK_PASSWORD);
	ck_assert_int_eq(policy("12345678"), FIN_E_WEAK_PASSWORD);
	ck_assert_int_eq(policy("iloveyou"), FIN_E_WEAK_PASSWORD);
	ck_assert_int_eq(policy("baseball"), FIN_E_WEAK_PASSWORD);
	ck_assert_int_eq(policy("trustno1"), FIN_E_WEAK_PASSWORD);
	/* The list's last entry and its first of 8 characters or more. */
	ck_assert_int_eq(policy("zzzzzzzz"), FIN_E_WEAK_PASSWORD);
	ck_assert_int_eq(policy("0.0.0.000"), FIN_E_WEAK_PASSWORD);
	/* Case does not make a listed password stronger. */
	ck_assert_int_eq(policy("Password"), FIN_E_WEAK_PASSWORD);
	ck_assert_int_eq(policy("PASSWORD"), FIN_E_WEAK_PASSWORD);
	ck_assert_int_eq(policy("LetMeIn1"), policy("letmein1"));
}
END_TEST

START_TEST(test_password_policy_accepts_ordinary)
{
	ck_assert_int_eq(policy("Password123!"), FIN_OK);
	ck_assert_int_eq(policy("correct horse battery staple"), FIN_OK);
	ck_assert_int_eq(policy("password1234567890x"), FIN_OK);
	ck_assert_int_eq(policy(" password"), FIN_OK);
}
END_TEST

START_TEST(test_password_common_list_sorted)
{
	size_t	 i, n = sizeof(common_passwords) / sizeof(common_passwords[0]);
	size_t	 refused = 0;

	/*
	 * The generated list must be what bsearch() needs: strictly
	 * ascending under strcmp(), lower-case.  And every entry the length
	 * rule lets through must then be refused as common.
	 */
	ck_assert_uint_gt(n, 9000);
	for (i = 0; i < n; i++) {
		const char *p;

		if (i > 0)
			ck_assert_msg(strcmp(common_passwords[i - 1],
			    common_passwords[i]) < 0, "unsorted at %zu", i);
		for (p = common_passwords[i]; *p != '\0'; p++)
			ck_assert(!(*p >= 'A' && *p <= 'Z'));
		if (strlen(common_passwords[i]) < FIN_PASSWORD_MIN)
			continue;
		ck_assert_msg(policy(common_passwords[i]) ==
		    FIN_E_WEAK_PASSWORD, "%s accepted", common_passwords[i]);
		refused++;
	}
	ck_assert_uint_gt(refused, 2000);
}
END_TEST

static Suite *
password_suite(void)
{
	Suite	*s = suite_create("password");
	TCase	*core = tcase_create("core");
	TCase	*pol = tcase_create("policy");

	tcase_add_checked_fixture(core, setup, NULL);
	tcase_add_test(core, test_password_round_trip);
	tcase_add_test(core, test_password_wrong_refused);
	tcase_add_test(core, test_password_hash_is_argon2id);
	tcase_add_test(core, test_password_needs_rehash_when_limits_change);
	tcase_add_test(core, test_password_corrupt_hash_is_an_error);
	tcase_add_test(core, test_password_bad_limits_are_an_error);
	tcase_add_test(core, test_password_verify_dummy);
	tcase_add_test(pol, test_password_policy_length);
	tcase_add_test(pol, test_password_policy_counts_characters);
	tcase_add_test(pol, test_password_policy_invalid_utf8);
	tcase_add_test(pol, test_password_policy_common);
	tcase_add_test(pol, test_password_policy_accepts_ordinary);
	tcase_add_test(pol, test_password_common_list_sorted);
	suite_add_tcase(s, core);
	suite_add_tcase(s, pol);
	return s;
}

FIN_CHECK_MAIN(password_suite)
