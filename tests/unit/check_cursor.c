/*
 * Cursors: opaque, signed, and refused when edited in any way.
 */
#include <string.h>

#include "internal.h"
#include "unit.h"

static struct fin_config cfg = {
	.jwt_secret = "cursor-test-secret-0123456789abcdef",
};

START_TEST(test_cursor_roundtrip)
{
	char	 c[FIN_CURSOR_MAX], p[FIN_CURSOR_PAYLOAD_MAX + 1];

	ck_assert(Fin_cursor_encode(&cfg, "t|2026-11-24|x|y", c));
	ck_assert(Fin_cursor_decode(&cfg, c, p));
	ck_assert_str_eq(p, "t|2026-11-24|x|y");
}
END_TEST

START_TEST(test_cursor_tamper_refused)
{
	char	 c[FIN_CURSOR_MAX], p[FIN_CURSOR_PAYLOAD_MAX + 1];
	size_t	 i, n;
	struct fin_config other = { .jwt_secret = "another-secret-0123456789abcdef" };

	ck_assert(Fin_cursor_encode(&cfg, "a:12345", c));
	n = strlen(c);
	/* Every single-character change of the cursor is refused. */
	for (i = 0; i < n; i++) {
		char saved = c[i];

		c[i] = saved == 'A' ? 'B' : 'A';
		ck_assert_msg(!Fin_cursor_decode(&cfg, c, p), "changed at %zu", i);
		c[i] = saved;
	}
	ck_assert(!Fin_cursor_decode(&other, c, p));
	c[n - 2] = '\0';
	ck_assert(!Fin_cursor_decode(&cfg, c, p));
	ck_assert(!Fin_cursor_decode(&cfg, "", p));
	ck_assert(!Fin_cursor_decode(&cfg, "nodot", p));
	ck_assert(!Fin_cursor_decode(&cfg, ".", p));
	ck_assert(!Fin_cursor_decode(&cfg, "YTox.=====", p));
}
END_TEST

START_TEST(test_cursor_limits)
{
	char	 c[FIN_CURSOR_MAX], big[FIN_CURSOR_PAYLOAD_MAX + 2];
	char	 longc[FIN_CURSOR_MAX + 10], p[FIN_CURSOR_PAYLOAD_MAX + 1];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert(!Fin_cursor_encode(&cfg, big, c));
	ck_assert(!Fin_cursor_encode(&cfg, "", c));
	memset(longc, 'A', sizeof(longc) - 1);
	longc[sizeof(longc) - 1] = '\0';
	ck_assert(!Fin_cursor_decode(&cfg, longc, p));
}
END_TEST

static Suite *
cursor_suite(void)
{
	Suite	*s = suite_create("cursor");
	TCase	*core = tcase_create("core");

	tcase_add_test(core, test_cursor_roundtrip);
	tcase_add_test(core, test_cursor_tamper_refused);
	tcase_add_test(core, test_cursor_limits);
	suite_add_tcase(s, core);
	return s;
}

FIN_CHECK_MAIN(cursor_suite)
