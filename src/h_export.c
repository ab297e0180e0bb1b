/*
 * /export: the caller's data as files -- the transactions as CSV and as
 * a PDF statement, and everything held about them as JSON (GDPR).  lib/
 * writes each through a callback; the callback here starts the HTTP
 * response on its first call.  So an error before any byte is still the
 * usual JSON error (with none of the attachment's headers), and an error
 * after it can only cut the body short: it is logged and the response
 * ends there.
 *
 * Exports carry Cache-Control: no-store rather than the "private,
 * no-cache" of other authenticated responses: a file of someone's
 * finances has no business in any cache, the browser's disk cache
 * included, and there is no ETag to revalidate a stream against.
 * A HEAD request gets the headers and runs no export (nor audits one).
 */
#include "app.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define STR(x)	#x
#define XSTR(x)	STR(x)

struct stream {
	struct request	*req;
	const char	*content_type;
	const char	*disposition;
	bool		 started;
};

static bool
stream_begin(struct stream *s)
{
	s->started = true;
	resp_header(s->req, "Content-Disposition", s->disposition);
	resp_header(s->req, "Cache-Control", "no-store");
	return resp_stream_begin(s->req, 200, s->content_type);
}

/* The fin_write_fn of every export. */
static bool
stream_write(void *arg, const char *buf, size_t len)
{
	struct stream	*s = arg;

	if (!s->started && !stream_begin(s))
		return false;
	return resp_stream_write(s->req, buf, len);
}

/*
 * What the handler returns once lib is done: an error while nothing was
 * sent goes to the pipeline's JSON error writer; after the headers it is
 * too late for a status, so it is logged and the connection is cut (the
 * client sees a failed transfer, never a short file that looks whole).
 */
static enum fin_err
stream_end(struct stream *s, enum fin_err e, const char *format)
{
	if (e == FIN_OK && !s->started)
		(void)stream_begin(s);
	if (e == FIN_OK || !s->started)
		return e;
	fin_log(FIN_LOG_WARN, "export_cut_short", "%s export of user %s "
	    "stopped after its body started (request %s): %s", format,
	    s->req->user_id, s->req->request_id, fin_err_code(e));
	resp_stream_abort(s->req);
	return FIN_OK;
}

/*
 * attachment; filename="<stem>-<range>.<ext>": the range asked for, or
 * today's date (UTC) for everything.  Only dates go in, so no quoting.
 */
static const char *
disposition(struct request *req, const char *stem, const char *from,
    const char *to, const char *ext)
{
	char		 today[16];
	struct tm	 tm;
	time_t		 now = time(NULL);

	if (from != NULL && to != NULL)
		return fin_arena_printf(req->arena, "attachment; "
		    "filename=\"%s-%s-to-%s.%s\"", stem, from, to, ext);
	if (from != NULL)
		return fin_arena_printf(req->arena, "attachment; "
		    "filename=\"%s-from-%s.%s\"", stem, from, ext);
	if (to != NULL)
		return fin_arena_printf(req->arena, "attachment; "
		    "filename=\"%s-until-%s.%s\"", stem, to, ext);
	gmtime_r(&now, &tm);
	strftime(today, sizeof(today), "%Y-%m-%d", &tm);
	return fin_arena_printf(req->arena, "attachment; "
	    "filename=\"%s-%s.%s\"", stem, today, ext);
}

enum fin_err
h_export_csv(struct request *req)
{
	struct stream	 s = { req, "text/csv; charset=utf-8", NULL, false };
	const char	*from, *to;
	enum fin_err	 e;

	if ((e = request_date_range(req, &from, &to)) != FIN_OK)
		return e;
	if ((s.disposition = disposition(req, "transactions", from, to,
	    "csv")) == NULL)
		return FIN_E_INTERNAL_ERROR;
	if (req->method == M_HEAD)
		return stream_end(&s, FIN_OK, "csv");
	e = fin_export_csv(req->ctx, &req->client, req->user_id, from, to,
	    stream_write, &s);
	return stream_end(&s, e, "csv");
}

enum fin_err
h_export_pdf(struct request *req)
{
	struct stream	 s = { req, "application/pdf", NULL, false };
	const char	*from, *to;
	enum fin_err	 e;

	/* The pdf_export flag off is the instant rollback: the route is gone. */
	if (!fin_export_pdf_enabled(req->ctx, req->user_id))
		return FIN_E_NOT_FOUND;
	if ((e = request_date_range(req, &from, &to)) != FIN_OK)
		return e;
	if ((s.disposition = disposition(req, "statement", from, to,
	    "pdf")) == NULL)
		return FIN_E_INTERNAL_ERROR;
	if (req->method == M_HEAD)
		return stream_end(&s, FIN_OK, "pdf");
	e = fin_export_pdf(req->ctx, &req->client, req->user_id, from, to,
	    stream_write, &s);
	if (e == FIN_E_VALIDATION_ERROR && !s.started)
		return field_error(req, "from", "the period holds more than "
		    XSTR(FIN_PDF_ROWS_MAX) " transactions: choose a shorter one");
	return stream_end(&s, e, "pdf");
}

enum fin_err
h_export_me(struct request *req)
{
	struct stream	 s = { req, "application/json; charset=utf-8", NULL,
			    false };
	enum fin_err	 e;

	s.disposition = fin_arena_printf(req->arena, "attachment; "
	    "filename=\"libfinance-export-%s.json\"", req->user_id);
	if (s.disposition == NULL)
		return FIN_E_INTERNAL_ERROR;
	if (req->method == M_HEAD)
		return stream_end(&s, FIN_OK, "json");
	e = fin_export_user(req->ctx, &req->client, req->user_id,
	    stream_write, &s);
	return stream_end(&s, e, "json");
}
