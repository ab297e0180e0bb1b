/*
 * GET /export/transactions.pdf: a statement a person would accept from a
 * bank, made with libharu.  A4 portrait: the first page opens with the
 * title, the account holder, the period and when it was generated; every
 * page carries the table's column headers (date, description, category,
 * amount) and "Page n of m"; the rows run oldest first; the statement
 * ends with the totals per currency (money in, money out, net).
 *
 * Text is UTF-8 in an embedded TrueType font (PDF_FONT, PDF_FONT_BOLD:
 * DejaVu Sans by default).  Characters the font cannot draw are replaced
 * by '?' before libharu sees them (lib/pdf_text.c says which and why),
 * and every cell is cut to its column with an ellipsis -- except the
 * amount, which is never cut: it shrinks until it fits.
 *
 * libharu keeps the whole document in memory, and "Page n of m" needs m:
 * the rows are laid out first, then each page, still open in libharu,
 * gets its footer, and only then is the document serialised and written
 * out in chunks.  So nothing is sent before the statement is complete and
 * audited, and every error is still a clean JSON error.  The cost is the
 * document in memory: a worker's peak grows by about 6 MB for 10,000 rows
 * (201 pages, 600 KB of PDF) -- fine, and linear, which is why a
 * statement is capped at FIN_PDF_ROWS_MAX rows.
 */
#include "setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hpdf.h>

#include "internal.h"

#define PAGE_TOP	792.0f		/* A4 is 595 x 842 pt: 50 pt margins */
#define PAGE_BOTTOM	64.0f		/* no row below this baseline */
#define PAGE_LEFT	50.0f
#define PAGE_RIGHT	545.0f
#define FOOTER_Y	32.0f
#define ROW_H		14.0f
#define TEXT_SIZE	9.0f
#define SMALL_SIZE	8.0f
#define TEXT_MAX	4096		/* bytes of one cell's text */
#define CURRENCIES_MAX	256		/* distinct currencies in the totals */

/*
 * The two tables, each column with its header: text is cut to its width
 * with an ellipsis, numbers (right-aligned) shrink to fit instead.
 */
#define COLS_MAX	5

struct column {
	const char	*title;
	float		 x, w;
	bool		 number;
};

struct table {
	size_t		 ncols;
	struct column	 col[COLS_MAX];
};

enum row_col {
	COL_DATE,
	COL_DESCRIPTION,
	COL_CATEGORY,
	COL_AMOUNT,
	COL__MAX
};

static const struct table rows_table = { COL__MAX, {
	/* title           x       width   number */
	{ "Date",          50.0f,  60.0f,  false },	/* COL_DATE */
	{ "Description",   116.0f, 220.0f, false },	/* COL_DESCRIPTION */
	{ "Category",      342.0f, 90.0f,  false },	/* COL_CATEGORY */
	{ "Amount",        438.0f, 107.0f, true },	/* COL_AMOUNT */
} };

enum total_col {
	TCOL_CURRENCY,
	TCOL_COUNT,
	TCOL_IN,
	TCOL_OUT,
	TCOL_NET,
	TCOL__MAX
};

static const struct table totals_table = { TCOL__MAX, {
	{ "Currency",      50.0f,  60.0f,  false },	/* TCOL_CURRENCY */
	{ "Transactions",  116.0f, 70.0f,  true },	/* TCOL_COUNT */
	{ "Money in",      192.0f, 113.0f, true },	/* TCOL_IN */
	{ "Money out",     311.0f, 113.0f, true },	/* TCOL_OUT */
	{ "Net",           430.0f, 115.0f, true },	/* TCOL_NET */
} };

struct total {
	char		 currency[4];
	int64_t		 in, out;	/* minor units: in >= 0, out <= 0 */
	int64_t		 count;
	bool		 in_over, out_over; /* past int64: said so, never wrong */
};

struct pdf {
	HPDF_Doc	 doc;
	HPDF_Font	 font, bold;
	struct fin_glyphs glyphs, glyphs_bold;
	HPDF_Page	*pages;
	size_t		 npages, cap;
	HPDF_Page	 page;
	const struct table *table;	/* whose headers a new page repeats */
	float		 y;
	HPDF_STATUS	 error, detail;	/* libharu's first error, 0 if none */
	bool		 oom;
	struct total	 totals[CURRENCIES_MAX];
	size_t		 ntotals;
	int64_t		 rows;
	char		 holder[TEXT_MAX];	/* "Name <email>" */
	char		 period[64];
	char		 generated[32];
	char		 text[TEXT_MAX];	/* scratch for one cell */
};

static void
on_error(HPDF_STATUS error, HPDF_STATUS detail, void *arg)
{
	struct pdf	*p = arg;

	/* The end of the serialised stream is reported as an error too. */
	if (error == HPDF_STREAM_EOF || p->error != 0)
		return;
	p->error = error;
	p->detail = detail;
}

static bool
failed(const struct pdf *p)
{
	return p->error != 0 || p->oom;
}

/* ------------------------------------------------------------------ */
/* Drawing                                                             */
/* ------------------------------------------------------------------ */

struct width_arg {
	HPDF_Font	 font;
	float		 size;
};

static float
glyph_width(void *arg, uint32_t cp)
{
	const struct width_arg *w = arg;

	return (float)HPDF_Font_GetUnicodeWidth(w->font, (HPDF_UNICODE)cp) *
	    w->size / 1000.0f;
}

/*
 * Draws text in a box of width w at x (right-aligned to x + w when
 * right), after making it safe for the font and cutting it to the box.
 * shrink: instead of cutting, make the type smaller until it fits (for
 * amounts, which must never lose a digit).
 */
static void
text_at(struct pdf *p, HPDF_Page page, bool bold, float size, float x,
    float w, float y, const char *s, bool right, bool shrink)
{
	struct width_arg wa;
	const struct fin_glyphs *g = bold ? &p->glyphs_bold : &p->glyphs;
	const char	*ellipsis;
	size_t		 n;
	float		 tw;
	bool		 cut;

	n = strnlen(s, TEXT_MAX - 1);
	memcpy(p->text, s, n);
	/* Longer than any column holds: cut on a character boundary. */
	while (n > 0 && s[n] != '\0' && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	p->text[n] = '\0';
	if (!Fin_pdf_text_safe(g, p->text, p->text, sizeof(p->text)))
		return;
	wa.font = bold ? p->bold : p->font;
	wa.size = size;
	tw = Fin_pdf_width(p->text, glyph_width, &wa);
	if (tw > w && shrink) {
		size = size * w / tw;
		wa.size = size;
		tw = Fin_pdf_width(p->text, glyph_width, &wa);
	} else if (tw > w) {
		ellipsis = Fin_glyphs_has(g, 0x2026) ? "\xe2\x80\xa6" : "...";
		n = Fin_pdf_fit(p->text, w, Fin_pdf_width(ellipsis, glyph_width,
		    &wa), glyph_width, &wa, &cut);
		p->text[n] = '\0';
		if (cut && n + strlen(ellipsis) < sizeof(p->text))
			memcpy(p->text + n, ellipsis, strlen(ellipsis) + 1);
		tw = Fin_pdf_width(p->text, glyph_width, &wa);
	}
	HPDF_Page_BeginText(page);
	HPDF_Page_SetFontAndSize(page, wa.font, size);
	HPDF_Page_TextOut(page, right ? x + w - tw : x, y, p->text);
	HPDF_Page_EndText(page);
}

static void
rule(HPDF_Page page, float y, float gray, float width)
{
	HPDF_Page_SetGrayStroke(page, gray);
	HPDF_Page_SetLineWidth(page, width);
	HPDF_Page_MoveTo(page, PAGE_LEFT, y);
	HPDF_Page_LineTo(page, PAGE_RIGHT, y);
	HPDF_Page_Stroke(page);
}

/* The table's column headers, and above the totals their title. */
static void
column_headers(struct pdf *p)
{
	const struct column *c;
	size_t		 i;

	if (p->table == &totals_table) {
		text_at(p, p->page, true, 11.0f, PAGE_LEFT, PAGE_RIGHT - PAGE_LEFT,
		    p->y, "Totals per currency", false, false);
		p->y -= ROW_H + 6.0f;
	}

	for (i = 0; i < p->table->ncols; i++) {
		c = &p->table->col[i];
		text_at(p, p->page, true, TEXT_SIZE, c->x, c->w, p->y, c->title,
		    c->number, c->number);
	}
	rule(p->page, p->y - 4.0f, 0.0f, 0.75f);
	p->y -= ROW_H + 4.0f;
}

/* The first page opens with the statement's head; the others recall it. */
static bool
new_page(struct pdf *p)
{
	HPDF_Page	*np, page;
	char		 line[TEXT_MAX + 128];

	if (p->npages == p->cap) {
		p->cap = p->cap == 0 ? 16 : p->cap * 2;
		if ((np = realloc(p->pages, p->cap * sizeof(*np))) == NULL) {
			p->oom = true;
			return false;
		}
		p->pages = np;
	}
	if ((page = HPDF_AddPage(p->doc)) == NULL)
		return false;
	HPDF_Page_SetSize(page, HPDF_PAGE_SIZE_A4, HPDF_PAGE_PORTRAIT);
	p->pages[p->npages++] = page;
	p->page = page;
	p->y = PAGE_TOP;
	if (p->npages == 1) {
		text_at(p, page, true, 20.0f, PAGE_LEFT, 300.0f, p->y,
		    "Statement", false, false);
		p->y -= 30.0f;
		snprintf(line, sizeof(line), "Account holder: %s", p->holder);
		text_at(p, page, false, 10.0f, PAGE_LEFT, PAGE_RIGHT - PAGE_LEFT,
		    p->y, line, false, false);
		p->y -= 15.0f;
		snprintf(line, sizeof(line), "Period: %s", p->period);
		text_at(p, page, false, 10.0f, PAGE_LEFT, PAGE_RIGHT - PAGE_LEFT,
		    p->y, line, false, false);
		p->y -= 15.0f;
		snprintf(line, sizeof(line), "Generated: %s", p->generated);
		text_at(p, page, false, 10.0f, PAGE_LEFT, PAGE_RIGHT - PAGE_LEFT,
		    p->y, line, false, false);
		p->y -= 30.0f;
	} else {
		snprintf(line, sizeof(line), "Statement \xc2\xb7 %s \xc2\xb7 %s",
		    p->holder, p->period);
		text_at(p, page, false, SMALL_SIZE, PAGE_LEFT,
		    PAGE_RIGHT - PAGE_LEFT, p->y, line, false, false);
		p->y -= 22.0f;
	}
	column_headers(p);
	return !failed(p);
}

/* A row of the current table, on a new page when this one is full. */
static bool
row(struct pdf *p, const char *const *cells)
{
	const struct column *c;
	size_t		 i;

	if (p->y < PAGE_BOTTOM && !new_page(p))
		return false;
	for (i = 0; i < p->table->ncols; i++) {
		c = &p->table->col[i];
		text_at(p, p->page, false, TEXT_SIZE, c->x, c->w, p->y, cells[i],
		    c->number, c->number);
	}
	p->y -= ROW_H;
	return !failed(p);
}

/* ------------------------------------------------------------------ */
/* Rows and totals                                                     */
/* ------------------------------------------------------------------ */

static struct total *
total_for(struct pdf *p, const char *currency)
{
	struct total	*t;
	size_t		 i;

	for (i = 0; i < p->ntotals; i++)
		if (strcmp(p->totals[i].currency, currency) == 0)
			return &p->totals[i];
	if (p->ntotals == CURRENCIES_MAX)
		return NULL;
	t = &p->totals[p->ntotals++];
	memset(t, 0, sizeof(*t));
	snprintf(t->currency, sizeof(t->currency), "%s", currency);
	return t;
}

/* "-12.50 EUR" */
static bool
money(int64_t minor, const char *currency, char *out, size_t outsz)
{
	char	 n[32];

	if (!Fin_amount_decimal(minor, Fin_export_minor_units(currency), n,
	    sizeof(n)))
		return false;
	return (size_t)snprintf(out, outsz, "%s %s", n, currency) < outsz;
}

static enum fin_err
put_row(void *arg, PGresult *res, int i)
{
	struct pdf	*p = arg;
	struct total	*t;
	const char	*cells[COL__MAX];
	const char	*cur = PQgetvalue(res, i, FIN_XC_CURRENCY);
	char		 amount[48];
	int64_t		 minor;

	if (p->rows >= FIN_PDF_ROWS_MAX)
		return FIN_E_VALIDATION_ERROR;
	if (!fin_parse_int64(PQgetvalue(res, i, FIN_XC_AMOUNT), INT64_MIN,
	    INT64_MAX, &minor) || !money(minor, cur, amount, sizeof(amount)))
		return FIN_E_INTERNAL_ERROR;
	if ((t = total_for(p, cur)) == NULL) {
		fin_log(FIN_LOG_ERROR, "export_pdf", "could not total a "
		    "statement: more than %d currencies", CURRENCIES_MAX);
		return FIN_E_INTERNAL_ERROR;
	}
	t->count++;
	if (minor >= 0 && __builtin_add_overflow(t->in, minor, &t->in))
		t->in_over = true;
	if (minor < 0 && __builtin_add_overflow(t->out, minor, &t->out))
		t->out_over = true;
	cells[COL_DATE] = PQgetvalue(res, i, FIN_XC_OCCURRED_ON);
	cells[COL_DESCRIPTION] = PQgetvalue(res, i, FIN_XC_DESCRIPTION);
	cells[COL_CATEGORY] = PQgetvalue(res, i, FIN_XC_CATEGORY);
	cells[COL_AMOUNT] = amount;
	p->rows++;
	return row(p, cells) ? FIN_OK : FIN_E_INTERNAL_ERROR;
}

static int
by_currency(const void *a, const void *b)
{
	return strcmp(((const struct total *)a)->currency,
	    ((const struct total *)b)->currency);
}

/*
 * The totals table: per currency, how many transactions, money in, money
 * out and the net.  Its heading moves to a new page with at least two
 * lines, and a page it runs onto repeats its own column headers.
 */
static bool
totals(struct pdf *p)
{
	const char	*cells[TCOL__MAX];
	char		 count[24], in[48], out[48], net[48];
	int64_t		 sum;
	size_t		 i;

	if (p->rows == 0) {
		cells[COL_DATE] = "";
		cells[COL_DESCRIPTION] = "No transactions in this period.";
		cells[COL_CATEGORY] = "";
		cells[COL_AMOUNT] = "";
		if (!row(p, cells))
			return false;
	}
	p->table = &totals_table;
	if (p->y - 5.0f * ROW_H < PAGE_BOTTOM) {
		if (!new_page(p))
			return false;
	} else {
		p->y -= 12.0f;
		column_headers(p);
	}
	if (p->ntotals == 0) {
		cells[TCOL_CURRENCY] = "None";
		cells[TCOL_COUNT] = "0";
		cells[TCOL_IN] = cells[TCOL_OUT] = cells[TCOL_NET] = "";
		return row(p, cells);
	}
	qsort(p->totals, p->ntotals, sizeof(p->totals[0]), by_currency);
	for (i = 0; i < p->ntotals; i++) {
		const struct total *t = &p->totals[i];

		snprintf(count, sizeof(count), "%lld", (long long)t->count);
		if (t->in_over)
			snprintf(in, sizeof(in), "too large");
		else if (!money(t->in, t->currency, in, sizeof(in)))
			return false;
		if (t->out_over)
			snprintf(out, sizeof(out), "too large");
		else if (!money(t->out, t->currency, out, sizeof(out)))
			return false;
		if (t->in_over || t->out_over ||
		    __builtin_add_overflow(t->in, t->out, &sum))
			snprintf(net, sizeof(net), "too large");
		else if (!money(sum, t->currency, net, sizeof(net)))
			return false;
		cells[TCOL_CURRENCY] = t->currency;
		cells[TCOL_COUNT] = count;
		cells[TCOL_IN] = in;
		cells[TCOL_OUT] = out;
		cells[TCOL_NET] = net;
		if (!row(p, cells))
			return false;
	}
	return true;
}

/* "Page n of m" on every page, now that m is known. */
static void
footers(struct pdf *p)
{
	char	 s[64];
	size_t	 i;

	for (i = 0; i < p->npages; i++) {
		snprintf(s, sizeof(s), "Page %zu of %zu", i + 1, p->npages);
		rule(p->pages[i], FOOTER_Y + 12.0f, 0.75f, 0.5f);
		text_at(p, p->pages[i], false, SMALL_SIZE, PAGE_RIGHT - 150.0f,
		    150.0f, FOOTER_Y, s, true, false);
	}
}

/* ------------------------------------------------------------------ */
/* The statement                                                       */
/* ------------------------------------------------------------------ */

bool
fin_export_pdf_enabled(struct fin_ctx *ctx, const char *user_id)
{
	return fin_flag_enabled(ctx, "pdf_export", user_id);
}

static void
describe(struct pdf *p, const struct fin_user *u, const char *from,
    const char *to)
{
	struct tm	 tm;
	time_t		 now = time(NULL);

	snprintf(p->holder, sizeof(p->holder), "%s <%s>", u->name, u->email);
	if (from != NULL && to != NULL)
		snprintf(p->period, sizeof(p->period), "%s \xe2\x80\x93 %s",
		    from, to);
	else if (from != NULL)
		snprintf(p->period, sizeof(p->period), "from %s", from);
	else if (to != NULL)
		snprintf(p->period, sizeof(p->period), "until %s", to);
	else
		snprintf(p->period, sizeof(p->period), "all time");
	gmtime_r(&now, &tm);
	strftime(p->generated, sizeof(p->generated), "%Y-%m-%d %H:%M UTC", &tm);
}

static enum fin_err
open_doc(struct pdf *p, const struct fin_config *cfg)
{
	const char	*name;
	char		 why[512];

	/* The maps first: they also say clearly when a font file is wrong. */
	if (!Fin_glyphs_load(cfg->pdf_font, &p->glyphs, why, sizeof(why)) ||
	    !Fin_glyphs_load(cfg->pdf_font_bold, &p->glyphs_bold, why,
	    sizeof(why))) {
		fin_log(FIN_LOG_ERROR, "export_pdf_font", "could not load the pdf "
		    "font: %s", why);
		return FIN_E_INTERNAL_ERROR;
	}
	if ((p->doc = HPDF_New(on_error, p)) == NULL)
		return FIN_E_INTERNAL_ERROR;
	HPDF_SetCompressionMode(p->doc, HPDF_COMP_ALL);
	HPDF_UseUTFEncodings(p->doc);
	HPDF_SetCurrentEncoder(p->doc, "UTF-8");
	/* libharu's default producer names its version: ours names nothing. */
	HPDF_SetInfoAttr(p->doc, HPDF_INFO_PRODUCER, "libfinance");
	HPDF_SetInfoAttr(p->doc, HPDF_INFO_TITLE, "Statement");
	if ((name = HPDF_LoadTTFontFromFile(p->doc, cfg->pdf_font,
	    HPDF_TRUE)) != NULL)
		p->font = HPDF_GetFont(p->doc, name, "UTF-8");
	if ((name = HPDF_LoadTTFontFromFile(p->doc, cfg->pdf_font_bold,
	    HPDF_TRUE)) != NULL)
		p->bold = HPDF_GetFont(p->doc, name, "UTF-8");
	if (p->font == NULL || p->bold == NULL || failed(p)) {
		fin_log(FIN_LOG_ERROR, "export_pdf_font", "could not load the pdf "
		    "fonts %s and %s: libharu error 0x%04x",
		    cfg->pdf_font, cfg->pdf_font_bold, (unsigned)p->error);
		return FIN_E_INTERNAL_ERROR;
	}
	return FIN_OK;
}

/* Serialises the document and hands it to the callback in chunks. */
static enum fin_err
send_doc(struct pdf *p, fin_write_fn *write, void *arg)
{
	struct fin_chunk c;
	HPDF_UINT32	 n;
	enum fin_err	 e = FIN_OK;

	if (!Fin_chunk_init(&c, write, arg))
		return FIN_E_INTERNAL_ERROR;
	for (;;) {
		n = FIN_EXPORT_CHUNK;
		(void)HPDF_ReadFromStream(p->doc, (HPDF_BYTE *)c.buf, &n);
		if (n == 0)
			break;
		c.len = n;
		if (!Fin_chunk_flush(&c)) {
			e = FIN_E_SERVICE_UNAVAILABLE;
			break;
		}
	}
	Fin_chunk_free(&c);
	return e;
}

enum fin_err
fin_export_pdf(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *from, const char *to,
    fin_write_fn *write, void *arg)
{
	struct fin_principal pr;
	struct fin_user	 u;
	struct pdf	*p;
	int64_t		 rows = 0;
	enum fin_err	 e;

	if ((from != NULL && !fin_valid_date(from)) ||
	    (to != NULL && !fin_valid_date(to)))
		return FIN_E_VALIDATION_ERROR;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return FIN_E_INTERNAL_ERROR;
	if ((e = open_doc(p, fin_ctx_config(ctx))) != FIN_OK)
		goto out;
	if ((e = Fin_export_snapshot(ctx)) != FIN_OK)
		goto out;
	memset(&pr, 0, sizeof(pr));
	snprintf(pr.user_id, sizeof(pr.user_id), "%s", user_id);
	if ((e = fin_auth_me(ctx, &pr, &u)) != FIN_OK) {
		fin_db_rollback(ctx);
		goto out;
	}
	describe(p, &u, from, to);
	p->table = &rows_table;
	if (!new_page(p)) {
		fin_db_rollback(ctx);
		e = FIN_E_INTERNAL_ERROR;
		goto out;
	}
	e = Fin_export_txns(ctx, user_id, from, to, false, put_row, p, &rows);
	if (e != FIN_OK) {
		fin_db_rollback(ctx);
		goto out;
	}
	if ((e = fin_db_commit(ctx)) != FIN_OK)
		goto out;
	if (!totals(p)) {
		e = FIN_E_INTERNAL_ERROR;
		goto out;
	}
	footers(p);
	if (failed(p) || HPDF_SaveToStream(p->doc) != HPDF_OK || failed(p)) {
		e = FIN_E_INTERNAL_ERROR;
		goto out;
	}
	HPDF_ResetStream(p->doc);
	if ((e = Fin_export_audit(ctx, client, user_id, "pdf", from, to, rows,
	    true, NULL)) != FIN_OK)
		goto out;
	e = send_doc(p, write, arg);
out:
	if (failed(p))
		fin_log(FIN_LOG_ERROR, "export_pdf", "could not make a statement "
		    "for user %s: %s libharu error 0x%04x (detail %u)", user_id,
		    p->oom ? "out of memory," : "", (unsigned)p->error,
		    (unsigned)p->detail);
	if (p->doc != NULL)
		HPDF_Free(p->doc);
	free(p->pages);
	free(p);
	return e;
}
