/*
 * What the three exports share: the bounded chunk buffer that hands bytes
 * to the caller's write callback, the read-only snapshot they read in, the
 * keyset walk over a user's transactions, money as a decimal string, and
 * the "export" audit event.
 *
 * How rows are streamed, and why this way.  Each batch of
 * FIN_EXPORT_BATCH rows is one short prepared statement, keyset-ordered
 * on (occurred_on, created_at, id) like the list (the same indexes, read
 * backwards), and its result is freed before the next one is asked for:
 * memory stays flat however many rows there are.  The batches run inside
 * one REPEATABLE READ READ ONLY SQL transaction, so they all see one
 * snapshot: no row is seen twice or missed when the user edits while the
 * export runs, and the PDF's totals agree with its rows.
 *   Rejected: PQsetSingleRowMode makes the whole export one statement,
 * so statement_timeout (DB_STATEMENT_TIMEOUT) would cut off any export
 * that takes longer than it to download (nginx paces us to the client
 * once its temp file is full), and it needs a second execution path in
 * lib/db.c; a DECLARE ... CURSOR cannot be a prepared statement with
 * parameters.  The price of the snapshot is a transaction open for as
 * long as the download: the xmin horizon waits for it, which for one
 * user's rows, read at nginx's pace, is acceptable.
 */
#include "setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * One statement per deleted-mode so that the live one matches the partial
 * index exactly.  ORDER BY names the table's columns: a bare occurred_on
 * would be the text output column of that name, sorted without the
 * index (a sequential scan and a sort for every batch).  The first batch starts after ('-infinity', '-infinity',
 * nil uuid), which is before every row, so there is no "first page"
 * variant.
 */
#define EXPORT_TXN_STMT(name, deleted) { name, \
	"SELECT " FIN_TXN_COLS " FROM transactions WHERE user_id = $1" deleted \
	"   AND ($2::date IS NULL OR occurred_on >= $2::date)" \
	"   AND ($3::date IS NULL OR occurred_on <= $3::date)" \
	"   AND (occurred_on, created_at, id) >" \
	"       ($4::date, $5::timestamptz, $6::uuid)" \
	" ORDER BY transactions.occurred_on, transactions.created_at," \
	"   transactions.id LIMIT $7", 7 }

static const struct fin_stmt stmt_txns[2] = {
	EXPORT_TXN_STMT("export_txns_live", " AND deleted_at IS NULL"),
	EXPORT_TXN_STMT("export_txns_all", ""),
};

/* The first statement of the transaction, or it is refused. */
static const struct fin_stmt stmt_snapshot = {
	"export_snapshot",
	"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0 };

/* ------------------------------------------------------------------ */
/* The chunk buffer                                                    */
/* ------------------------------------------------------------------ */

bool
Fin_chunk_init(struct fin_chunk *c, fin_write_fn *write, void *arg)
{
	memset(c, 0, sizeof(*c));
	c->write = write;
	c->arg = arg;
	c->buf = malloc(FIN_EXPORT_CHUNK);
	return c->buf != NULL;
}

void
Fin_chunk_free(struct fin_chunk *c)
{
	free(c->buf);
	c->buf = NULL;
}

static bool
emit(struct fin_chunk *c, const char *p, size_t n)
{
	if (c->failed)
		return false;
	if (n == 0)
		return true;
	if (!c->write(c->arg, p, n)) {
		c->failed = true;
		return false;
	}
	c->sent += n;
	return true;
}

bool
Fin_chunk_flush(struct fin_chunk *c)
{
	bool	 ok;

	ok = emit(c, c->buf, c->len);
	c->len = 0;
	return ok;
}

/*
 * Appends n bytes.  What does not fit in the space left flushes the
 * buffer first, so that a record (a CSV row, a JSON element) that is
 * smaller than the buffer is never split between two chunks, and a
 * truncated stream ends on a record boundary.  Larger records go out in
 * buffer-sized pieces.
 */
bool
Fin_chunk_put(struct fin_chunk *c, const char *p, size_t n)
{
	size_t	 k;

	if (c->failed)
		return false;
	if (n > FIN_EXPORT_CHUNK - c->len && !Fin_chunk_flush(c))
		return false;
	while (n > FIN_EXPORT_CHUNK) {
		if (!emit(c, p, FIN_EXPORT_CHUNK))
			return false;
		p += FIN_EXPORT_CHUNK;
		n -= FIN_EXPORT_CHUNK;
	}
	k = n;
	memcpy(c->buf + c->len, p, k);
	c->len += k;
	return true;
}

bool
Fin_chunk_puts(struct fin_chunk *c, const char *s)
{
	return Fin_chunk_put(c, s, strlen(s));
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

enum fin_err
Fin_export_snapshot(struct fin_ctx *ctx)
{
	PGresult	*res;
	enum fin_err	 e;

	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	if ((e = Fin_db_exec(ctx, &stmt_snapshot, NULL, &res)) != FIN_OK) {
		fin_db_rollback(ctx);
		return e;
	}
	PQclear(res);
	return FIN_OK;
}

/*
 * Calls fn once per transaction of the user, oldest first, in batches
 * (see the top of the file).  The PGresult a row belongs to is freed after
 * its batch: fn must copy what it keeps.  *rows counts the rows fn
 * accepted.  Stops at the first error of fn or of the database.
 */
enum fin_err
Fin_export_txns(struct fin_ctx *ctx, const char *user_id, const char *from,
    const char *to, bool with_deleted, fin_export_row_fn *fn, void *arg,
    int64_t *rows)
{
	char		 day[16], ts[40], id[40], limit[16];
	const char	*p[7];
	PGresult	*res;
	enum fin_err	 e;
	int		 i, n;

	snprintf(day, sizeof(day), "-infinity");
	snprintf(ts, sizeof(ts), "-infinity");
	snprintf(id, sizeof(id), "00000000-0000-0000-0000-000000000000");
	snprintf(limit, sizeof(limit), "%d", FIN_EXPORT_BATCH);
	p[0] = user_id;
	p[1] = from;
	p[2] = to;
	p[3] = day;
	p[4] = ts;
	p[5] = id;
	p[6] = limit;
	for (;;) {
		e = Fin_db_exec(ctx, &stmt_txns[with_deleted], p, &res);
		if (e != FIN_OK)
			return e;
		n = PQntuples(res);
		for (i = 0; i < n; i++) {
			if ((e = fn(arg, res, i)) != FIN_OK) {
				PQclear(res);
				return e;
			}
			(*rows)++;
		}
		if (n > 0) {
			snprintf(day, sizeof(day), "%s",
			    PQgetvalue(res, n - 1, FIN_XC_OCCURRED_ON));
			/* As PostgreSQL wrote it: to the microsecond. */
			snprintf(ts, sizeof(ts), "%s",
			    PQgetvalue(res, n - 1, FIN_XC_CREATED_AT));
			snprintf(id, sizeof(id), "%s",
			    PQgetvalue(res, n - 1, FIN_XC_ID));
		}
		PQclear(res);
		if (n < FIN_EXPORT_BATCH)
			return FIN_OK;
	}
}

/* ------------------------------------------------------------------ */
/* Money and audit                                                     */
/* ------------------------------------------------------------------ */

/*
 * Writes minor units as a plain decimal: 1250 with 2 units is "12.50",
 * -5 with 3 is "-0.005", 1500 with 0 is "1500".  No grouping, '.' as the
 * separator, '-' only for negatives: a number every spreadsheet and
 * parser reads the same way.  Every int64, INT64_MIN included, is exact:
 * the digits come from the unsigned magnitude, never from a double.
 * False when units is not 0..18 or out is too small (28 bytes always do).
 */
bool
Fin_amount_decimal(int64_t minor, int units, char *out, size_t outsz)
{
	char		 digits[24];
	uint64_t	 mag;
	size_t		 nd = 0, len, i, j = 0, intlen;

	if (units < 0 || units > 18)
		return false;
	mag = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
	do {
		digits[nd++] = (char)('0' + mag % 10);
		mag /= 10;
	} while (mag > 0);
	/* At least one digit before the point: 5 with 2 units is 0.05. */
	while (nd < (size_t)units + 1)
		digits[nd++] = '0';
	intlen = nd - (size_t)units;
	len = (minor < 0) + nd + (units > 0) + 1;
	if (len > outsz)
		return false;
	if (minor < 0)
		out[j++] = '-';
	for (i = 0; i < nd; i++) {
		if (i == intlen)
			out[j++] = '.';
		out[j++] = digits[nd - 1 - i];
	}
	out[j] = '\0';
	return true;
}

/*
 * Minor units of a stored currency.  A code leaves lib/currency.c's table
 * only when ISO withdraws it, and every code withdrawn so far (HRK, CUC,
 * SLL, ZWL) had 2 decimals, the ISO 4217 default: rows kept in such a
 * currency still export with the right point.
 */
int
Fin_export_minor_units(const char *currency)
{
	int	 u = fin_currency_minor_units(currency);

	return u >= 0 ? u : 2;
}

/*
 * The "export" audit event, {"format", "from", "to", "rows", "complete"}
 * plus the caller's extra members (consumed).  Written in its own
 * statement after the read-only snapshot has ended (a READ ONLY
 * transaction cannot insert), and before the last chunk leaves, so that
 * an export that fits in one chunk never reaches the client unaudited
 * and a longer one does not end cleanly without its event.
 */
enum fin_err
Fin_export_audit(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *format, const char *from, const char *to,
    int64_t rows, bool complete, struct json_object *extra)
{
	struct json_object *d = json_object_new_object();
	enum fin_err	 e;

	json_object_object_add(d, "format", json_object_new_string(format));
	json_object_object_add(d, "from", from != NULL ?
	    json_object_new_string(from) : NULL);
	json_object_object_add(d, "to", to != NULL ?
	    json_object_new_string(to) : NULL);
	json_object_object_add(d, "rows", json_object_new_int64(rows));
	json_object_object_add(d, "complete", json_object_new_boolean(complete));
	if (extra != NULL) {
		json_object_object_foreach(extra, k, v)
			json_object_object_add(d, k, json_object_get(v));
		json_object_put(extra);
	}
	e = Fin_audit(ctx, client, user_id, "export", d);
	json_object_put(d);
	if (e != FIN_OK)
		fin_log(FIN_LOG_ERROR, "export_audit",
		    "could not write the audit event of a %s export of user %s",
		    format, user_id);
	return e;
}

/*
 * After a failure with bytes already sent: the data has left, so the
 * event is written anyway, marked incomplete.  Best effort: the database
 * may be what failed.
 */
void
Fin_export_audit_partial(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const char *format, const char *from, const char *to,
    int64_t rows)
{
	fin_db_rollback(ctx);
	if (Fin_export_audit(ctx, client, user_id, format, from, to, rows,
	    false, NULL) != FIN_OK)
		fin_log(FIN_LOG_ERROR, "export_unaudited", "%lld rows of a %s "
		    "export of user %s left without an audit event",
		    (long long)rows, format, user_id);
}
