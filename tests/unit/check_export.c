/*
 * The pure parts of the exports: money as a decimal, CSV fields and
 * formula neutralisation, and the PDF's text (glyph substitution against
 * the real DejaVu font, and cutting to a column).
 */
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "unit.h"

#define DEJAVU		"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define DEJAVU_BOLD	"/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
#define SAFE_INT	9007199254740991LL	/* 2^53 - 1 */

static const char *
dec(int64_t minor, int units)
{
	static char	 out[32];

	ck_assert(Fin_amount_decimal(minor, units, out, sizeof(out)));
	return out;
}

START_TEST(test_export_decimal_units)
{
	ck_assert_str_eq(dec(-1250, 2), "-12.50");	/* EUR */
	ck_assert_str_eq(dec(1500, 0), "1500");		/* JPY */
	ck_assert_str_eq(dec(1250, 3), "1.250");	/* BHD */
	ck_assert_str_eq(dec(0, 0), "0");
	ck_assert_str_eq(dec(0, 2), "0.00");
	ck_assert_str_eq(dec(0, 3), "0.000");
	ck_assert_str_eq(dec(5, 2), "0.05");
	ck_assert_str_eq(dec(-5, 2), "-0.05");
	ck_assert_str_eq(dec(-1, 3), "-0.001");
	ck_assert_str_eq(dec(-1, 0), "-1");
	ck_assert_str_eq(dec(100, 2), "1.00");
	ck_assert_str_eq(dec(-100000, 3), "-100.000");
	ck_assert_str_eq(dec(12345, 4), "1.2345");	/* CLF */
}
END_TEST

START_TEST(test_export_decimal_extremes)
{
	char	 small[6];

	ck_assert_str_eq(dec(SAFE_INT, 2), "90071992547409.91");
	ck_assert_str_eq(dec(-SAFE_INT, 2), "-90071992547409.91");
	ck_assert_str_eq(dec(SAFE_INT, 0), "9007199254740991");
	ck_assert_str_eq(dec(-SAFE_INT, 3), "-9007199254740.991");
	/* Beyond what the API stores, still exact: no double anywhere. */
	ck_assert_str_eq(dec(INT64_MAX, 2), "92233720368547758.07");
	ck_assert_str_eq(dec(INT64_MIN, 2), "-92233720368547758.08");
	ck_assert_str_eq(dec(INT64_MIN, 0), "-9223372036854775808");
	/* "-12.50" needs 7 bytes with the NUL. */
	ck_assert(!Fin_amount_decimal(-1250, 2, small, sizeof(small)));
	ck_assert(Fin_amount_decimal(1250, 2, small, sizeof(small)));
	ck_assert_str_eq(small, "12.50");
	ck_assert(!Fin_amount_decimal(1, -1, small, sizeof(small)));
	ck_assert(!Fin_amount_decimal(1, 19, small, sizeof(small)));
}
END_TEST

START_TEST(test_export_minor_units_fallback)
{
	ck_assert_int_eq(Fin_export_minor_units("EUR"), 2);
	ck_assert_int_eq(Fin_export_minor_units("JPY"), 0);
	ck_assert_int_eq(Fin_export_minor_units("BHD"), 3);
	/* Withdrawn (HRK, 2023): kept rows still get the ISO default. */
	ck_assert_int_eq(Fin_export_minor_units("HRK"), 2);
}
END_TEST

static const char *
field(const char *in, bool text)
{
	static char	 out[256];

	ck_assert(Fin_csv_field(in, text, out, sizeof(out)));
	return out;
}

START_TEST(test_export_csv_quoting)
{
	ck_assert_str_eq(field("plain", true), "plain");
	ck_assert_str_eq(field("", true), "");
	ck_assert_str_eq(field("Café Zürich 東京 🎉", true), "Café Zürich 東京 🎉");
	ck_assert_str_eq(field("a,b", true), "\"a,b\"");
	ck_assert_str_eq(field("say \"hi\"", true), "\"say \"\"hi\"\"\"");
	ck_assert_str_eq(field("\"", true), "\"\"\"\"");
	ck_assert_str_eq(field("two\nlines", true), "\"two\nlines\"");
	ck_assert_str_eq(field("two\r\nlines", true), "\"two\r\nlines\"");
	ck_assert_str_eq(field(" spaced ", true), " spaced ");
}
END_TEST

START_TEST(test_export_csv_neutralises_formulas)
{
	ck_assert_str_eq(field("=HYPERLINK(\"http://x\",\"y\")", true),
	    "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
	ck_assert_str_eq(field("=1+1", true), "'=1+1");
	ck_assert_str_eq(field("+33 6", true), "'+33 6");
	ck_assert_str_eq(field("-2", true), "'-2");
	ck_assert_str_eq(field("@SUM(A1)", true), "'@SUM(A1)");
	ck_assert_str_eq(field("\tx", true), "'\tx");
	ck_assert_str_eq(field("\rx", true), "\"'\rx\"");
	ck_assert_str_eq(field("=a,b", true), "\"'=a,b\"");
	/* Only at the start: a formula character inside is text anyway. */
	ck_assert_str_eq(field("a=b", true), "a=b");
	ck_assert_str_eq(field(" =1", true), " =1");
	/* Our numeric columns stay numbers. */
	ck_assert_str_eq(field("-12.50", false), "-12.50");
	ck_assert_str_eq(field("-1250", false), "-1250");
}
END_TEST

START_TEST(test_export_csv_bounds)
{
	char	 out[8], big[FIN_CSV_FIELD_SIZE(3)];

	ck_assert(Fin_csv_field("abcdef", true, out, sizeof(out)));
	ck_assert_str_eq(out, "abcdef");
	ck_assert(!Fin_csv_field("abcdefgh", true, out, sizeof(out)));
	ck_assert(!Fin_csv_field("=abcdef", true, out, sizeof(out)));
	ck_assert(!Fin_csv_field("a\"b\"c", true, out, sizeof(out)));
	/* The worst case of three bytes: all quotes, and a prefix. */
	ck_assert(Fin_csv_field("\"\"\"", true, big, sizeof(big)));
	ck_assert_str_eq(big, "\"\"\"\"\"\"\"\"");
	ck_assert(Fin_csv_field("-\"\"", true, big, sizeof(big)));
	ck_assert_str_eq(big, "\"'-\"\"\"\"\"");
}
END_TEST

static const char *
safe(const struct fin_glyphs *g, const char *in)
{
	static char	 out[256];

	ck_assert(Fin_pdf_text_safe(g, in, out, sizeof(out)));
	return out;
}

START_TEST(test_export_glyphs_substitution)
{
	static struct fin_glyphs g;
	uint32_t	 c;
	char		 tiny[4];

	memset(&g, 0, sizeof(g));
	for (c = 0x20; c < 0x7F; c++)
		Fin_glyphs_add(&g, c);
	Fin_glyphs_add(&g, 0xE9);	/* é */
	ck_assert_str_eq(safe(&g, "Café"), "Café");
	ck_assert_str_eq(safe(&g, "Zürich"), "Z?rich");
	ck_assert_str_eq(safe(&g, "東京"), "??");
	ck_assert_str_eq(safe(&g, "party 🎉!"), "party ?!");
	ck_assert_str_eq(safe(&g, "a\nb\tc\r"), "a b c ");
	ck_assert_str_eq(safe(&g, "bad \xff\xc3 end"), "bad ?? end");
	ck_assert_str_eq(safe(&g, "\xed\xa0\x80"), "???");	/* surrogate */
	ck_assert(!Fin_pdf_text_safe(&g, "abcd", tiny, sizeof(tiny)));
	ck_assert(Fin_pdf_text_safe(&g, "abc", tiny, sizeof(tiny)));
	/* In place. */
	memcpy(tiny, "\xc3\xbc", 3);
	ck_assert(Fin_pdf_text_safe(&g, tiny, tiny, sizeof(tiny)));
	ck_assert_str_eq(tiny, "?");
}
END_TEST

START_TEST(test_export_glyphs_dejavu)
{
	static struct fin_glyphs g, b;
	char		 why[256];

	if (access(DEJAVU, R_OK) != 0 || access(DEJAVU_BOLD, R_OK) != 0)
		return;		/* fonts-dejavu-core not installed */
	ck_assert_msg(Fin_glyphs_load(DEJAVU, &g, why, sizeof(why)), "%s", why);
	ck_assert_msg(Fin_glyphs_load(DEJAVU_BOLD, &b, why, sizeof(why)), "%s",
	    why);
	ck_assert_str_eq(safe(&g, "Statement Café Zürich Łódź Ελλάδα Москва"),
	    "Statement Café Zürich Łódź Ελλάδα Москва");
	ck_assert_str_eq(safe(&g, "€ £ ¥ – … ·"), "€ £ ¥ – … ·");
	ck_assert_str_eq(safe(&b, "Café Zürich …"), "Café Zürich …");
	ck_assert_str_eq(safe(&g, "東京"), "??");
	ck_assert_str_eq(safe(&g, "🎉"), "?");
	ck_assert_str_eq(safe(&g, "ありがとう 한국"), "????? ??");
	ck_assert(Fin_glyphs_has(&g, '?'));
	ck_assert(!Fin_glyphs_has(&g, 0x1F389));
}
END_TEST

START_TEST(test_export_glyphs_bad_font)
{
	static struct fin_glyphs g;
	char		 why[256];

	ck_assert(!Fin_glyphs_load("/nonexistent/font.ttf", &g, why, sizeof(why)));
	ck_assert(strstr(why, "could not open") != NULL);
}
END_TEST

static float
unit_width(void *arg, uint32_t cp)
{
	(void)arg;
	(void)cp;
	return 1.0f;
}

START_TEST(test_export_pdf_fit)
{
	bool	 cut;

	ck_assert_uint_eq(Fin_pdf_fit("abcde", 5, 1, unit_width, NULL, &cut), 5);
	ck_assert(!cut);
	ck_assert_uint_eq(Fin_pdf_fit("abcdef", 5, 1, unit_width, NULL, &cut), 4);
	ck_assert(cut);
	/* Characters, not bytes: "éééééé" is 12 bytes, 6 wide. */
	ck_assert_uint_eq(Fin_pdf_fit("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9", 5, 1, unit_width, NULL, &cut), 8);
	ck_assert(cut);
	/* No space left dangling before the ellipsis. */
	ck_assert_uint_eq(Fin_pdf_fit("abc  defgh", 6, 1, unit_width, NULL,
	    &cut), 3);
	ck_assert(cut);
	ck_assert_uint_eq(Fin_pdf_fit("", 5, 1, unit_width, NULL, &cut), 0);
	ck_assert(!cut);
	ck_assert(Fin_pdf_width("\xe6\x9d\xb1\xe4\xba\xac", unit_width, NULL) ==
	    2.0f);
}
END_TEST

static Suite *
export_suite(void)
{
	Suite	*s = suite_create("export");
	TCase	*money = tcase_create("money");
	TCase	*csv = tcase_create("csv");
	TCase	*pdf = tcase_create("pdf");

	tcase_add_test(money, test_export_decimal_units);
	tcase_add_test(money, test_export_decimal_extremes);
	tcase_add_test(money, test_export_minor_units_fallback);
	tcase_add_test(csv, test_export_csv_quoting);
	tcase_add_test(csv, test_export_csv_neutralises_formulas);
	tcase_add_test(csv, test_export_csv_bounds);
	tcase_add_test(pdf, test_export_glyphs_substitution);
	tcase_add_test(pdf, test_export_glyphs_dejavu);
	tcase_add_test(pdf, test_export_glyphs_bad_font);
	tcase_add_test(pdf, test_export_pdf_fit);
	suite_add_tcase(s, money);
	suite_add_tcase(s, csv);
	suite_add_tcase(s, pdf);
	return s;
}

FIN_CHECK_MAIN(export_suite)
