/*
 * GET /export/transactions.csv: the user's live transactions as RFC 4180
 * CSV, streamed in chunks through the caller's write callback (see
 * lib/export.c for how the rows are read).
 *
 * The format: a header row; CRLF after every record; a field is quoted
 * when it holds '"', ',', CR or LF, with '"' doubled inside; UTF-8 with no
 * byte order mark (the charset travels in Content-Type, and a BOM would
 * glue itself to the first column's name in most parsers).
 *
 * Formula injection (OWASP "CSV Injection"): a spreadsheet runs a cell
 * that starts with '=', '+', '-' or '@' (and, in some, tab or CR first)
 * as a formula, so a description "=HYPERLINK(...)" would become a live
 * link in the user's spreadsheet.  Text the user typed -- description and
 * category -- gets a leading "'" when it starts with one of those; the
 * cell then shows as text, and a reader can strip the "'" to get the
 * original back.  The columns we write ourselves are left alone: amount
 * ("-12.50") and amount_minor ("-1250") must stay numbers a spreadsheet
 * can add up, and they are made only of digits, '-' and '.', which cannot
 * form a formula; id, dates and the currency code are validated formats.
 */
#include "setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CSV_HEADER \
	"id,occurred_on,amount,amount_minor,currency,category,description," \
	"created_at\r\n"
/*
 * A row: description (500 characters, 2000 bytes) and category (64, 256
 * bytes) at worst double when quoted, plus the short columns.
 */
#define CSV_ROW_MAX	8192

static bool
formula_start(char c)
{
	return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' ||
	    c == '\r';
}

/*
 * Writes one field of in, quoted when RFC 4180 needs it and, for text,
 * neutralised against formulas.  False when out (of outsz bytes) is too
 * small; FIN_CSV_FIELD_SIZE(strlen(in)) always suffices.
 */
bool
Fin_csv_field(const char *in, bool text, char *out, size_t outsz)
{
	size_t	 n = strlen(in), i, j = 0;
	bool	 quote, prefix;

	prefix = text && formula_start(in[0]);
	quote = strpbrk(in, "\",\r\n") != NULL;
	if (outsz < FIN_CSV_FIELD_SIZE(n)) {
		/* The exact need, for callers with a tighter buffer. */
		size_t	 need = n + prefix + (quote ? 2 : 0) + 1;

		for (i = 0; i < n; i++)
			need += in[i] == '"';
		if (outsz < need)
			return false;
	}
	if (quote)
		out[j++] = '"';
	if (prefix)
		out[j++] = '\'';
	for (i = 0; i < n; i++) {
		if (in[i] == '"')
			out[j++] = '"';
		out[j++] = in[i];
	}
	if (quote)
		out[j++] = '"';
	out[j] = '\0';
	return true;
}

struct csv {
	struct fin_chunk chunk;
	char		 row[CSV_ROW_MAX];
};

/* Appends field and a separator (',' or CRLF) to the row at *len. */
static bool
add(char *row, size_t *len, const char *field, bool text, bool last)
{
	if (*len + 3 > CSV_ROW_MAX ||
	    !Fin_csv_field(field, text, row + *len, CSV_ROW_MAX - *len - 2))
		return false;
	*len += strlen(row + *len);
	if (last) {
		row[(*len)++] = '\r';
		row[(*len)++] = '\n';
	} else
		row[(*len)++] = ',';
	row[*len] = '\0';
	return true;
}

static enum fin_err
put_row(void *arg, PGresult *res, int i)
{
	struct csv	*c = arg;
	char		 amount[32], created[FIN_TS_API_MAX];
	const char	*cur = PQgetvalue(res, i, FIN_XC_CURRENCY);
	int64_t		 minor;
	size_t		 len = 0;

	if (!fin_parse_int64(PQgetvalue(res, i, FIN_XC_AMOUNT), INT64_MIN,
	    INT64_MAX, &minor) ||
	    !Fin_amount_decimal(minor, Fin_export_minor_units(cur), amount,
	    sizeof(amount)) || !Fin_db_ts_api(PQgetvalue(res, i,
	    FIN_XC_CREATED_AT), false, created, sizeof(created)))
		return FIN_E_INTERNAL_ERROR;
	if (!add(c->row, &len, PQgetvalue(res, i, FIN_XC_ID), false, false) ||
	    !add(c->row, &len, PQgetvalue(res, i, FIN_XC_OCCURRED_ON), false, false) ||
	    !add(c->row, &len, amount, false, false) ||
	    !add(c->row, &len, PQgetvalue(res, i, FIN_XC_AMOUNT), false, false) ||
	    !add(c->row, &len, cur, false, false) ||
	    !add(c->row, &len, PQgetvalue(res, i, FIN_XC_CATEGORY), true, false) ||
	    !add(c->row, &len, PQgetvalue(res, i, FIN_XC_DESCRIPTION), true, false) ||
	    !add(c->row, &len, created, false, true)) {
		fin_log(FIN_LOG_ERROR, "export_csv", "could not format "
		    "transaction %s: row longer than %d bytes",
		    PQgetvalue(res, i, FIN_XC_ID), CSV_ROW_MAX);
		return FIN_E_INTERNAL_ERROR;
	}
	/* A refusal is the client going away: stop reading rows. */
	return Fin_chunk_put(&c->chunk, c->row, len) ? FIN_OK :
	    FIN_E_SERVICE_UNAVAILABLE;
}

enum fin_err
fin_export_csv(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *from, const char *to,
    fin_write_fn *write, void *arg)
{
	struct csv	*c;
	int64_t		 rows = 0;
	enum fin_err	 e;

	if ((from != NULL && !fin_valid_date(from)) ||
	    (to != NULL && !fin_valid_date(to)))
		return FIN_E_VALIDATION_ERROR;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return FIN_E_INTERNAL_ERROR;
	if (!Fin_chunk_init(&c->chunk, write, arg)) {
		free(c);
		return FIN_E_INTERNAL_ERROR;
	}
	if ((e = Fin_export_snapshot(ctx)) != FIN_OK)
		goto out;
	if (!Fin_chunk_puts(&c->chunk, CSV_HEADER)) {
		e = FIN_E_SERVICE_UNAVAILABLE;
		fin_db_rollback(ctx);
		goto partial;
	}
	e = Fin_export_txns(ctx, user_id, from, to, false, put_row, c, &rows);
	if (e != FIN_OK) {
		fin_db_rollback(ctx);
		goto partial;
	}
	if ((e = fin_db_commit(ctx)) != FIN_OK)
		goto partial;
	if ((e = Fin_export_audit(ctx, client, user_id, "csv", from, to, rows,
	    true, NULL)) != FIN_OK)
		goto out;
	if (!Fin_chunk_flush(&c->chunk))
		e = FIN_E_SERVICE_UNAVAILABLE;
	goto out;
partial:
	if (c->chunk.sent > 0)
		Fin_export_audit_partial(ctx, client, user_id, "csv", from, to,
		    rows);
out:
	Fin_chunk_free(&c->chunk);
	free(c);
	return e;
}
