/*
 * Idempotent creation.  A POST with an Idempotency-Key inserts its key
 * first, in the same SQL transaction as the work: a concurrent request
 * with the same key waits on the unique index until the first commits,
 * then finds the stored response and replays it, so two racing requests
 * create exactly one row.  Records live 24 hours, per user.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "internal.h"

#define IDEMPOTENCY_TTL	"86400"		/* seconds, as Stripe */

static const struct fin_stmt stmt_claim = {
	"idem_claim",
	"INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at)"
	" VALUES ($1, $2, $3::bytea, now() + " IDEMPOTENCY_TTL " * interval '1 second')"
	" ON CONFLICT (user_id, key) DO UPDATE"
	"  SET request_hash = EXCLUDED.request_hash, status_code = NULL,"
	"   response_body = NULL, created_at = now(), expires_at = EXCLUDED.expires_at"
	"  WHERE idempotency_keys.expires_at <= now()"
	" RETURNING 1", 3 };
static const struct fin_stmt stmt_stored = {
	"idem_stored",
	"SELECT request_hash = $3::bytea, status_code, response_body"
	" FROM idempotency_keys WHERE user_id = $1 AND key = $2", 3 };
static const struct fin_stmt stmt_finish = {
	"idem_finish",
	"UPDATE idempotency_keys SET status_code = $3, response_body = $4"
	" WHERE user_id = $1 AND key = $2", 4 };

/* True for 1-255 printable ASCII characters. */
bool
fin_idempotency_key_valid(const char *key)
{
	size_t	 i;

	if (key == NULL || key[0] == '\0')
		return false;
	for (i = 0; key[i] != '\0'; i++)
		if (i >= 255 || (unsigned char)key[i] < 0x21 ||
		    (unsigned char)key[i] > 0x7e)
			return false;
	return true;
}

static void
request_hash(const unsigned char *req, size_t len, char out[80])
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;

	EVP_Digest(req, len, md, &mdlen, EVP_sha256(), NULL);
	memcpy(out, "\\x", 2);
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 + i * 2, 3, "%02x", md[i]);
}

enum fin_err
fin_txn_create(struct fin_ctx *ctx, const struct fin_client *client,
    const char *user_id, const struct fin_txn_input *in,
    const struct fin_idempotency *idem, struct fin_created *out)
{
	char		 hash[80], status[8];
	const char	*p[4];
	PGresult	*res;
	struct json_object *txn = NULL, *body;
	enum fin_err	 e;

	memset(out, 0, sizeof(*out));
	if (idem == NULL) {
		/* One statement, atomic on its own: no BEGIN, no COMMIT. */
		if ((e = Fin_txn_insert(ctx, client, user_id, in, &txn)) != FIN_OK)
			return e;
		out->status = 201;
		out->body = json_object_new_object();
		json_object_object_add(out->body, "transaction", txn);
		fin_cache_invalidate(ctx, user_id);
		return FIN_OK;
	}
	if ((e = fin_db_begin(ctx)) != FIN_OK)
		return e;
	request_hash(idem->request, idem->request_len, hash);
	p[0] = user_id;
	p[1] = idem->key;
	p[2] = hash;
	if ((e = Fin_db_exec(ctx, &stmt_claim, p, &res)) != FIN_OK)
		goto fail;
	if (PQntuples(res) == 0) {
		/* The key is taken: replay, or refuse another body. */
		PQclear(res);
		if ((e = Fin_db_exec(ctx, &stmt_stored, p, &res)) != FIN_OK)
			goto fail;
		if (PQntuples(res) != 1) {
			e = FIN_E_IDEMPOTENCY_KEY_IN_USE;
		} else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
			e = FIN_E_IDEMPOTENCY_KEY_REUSED;
		} else if (PQgetisnull(res, 0, 1)) {
			e = FIN_E_IDEMPOTENCY_KEY_IN_USE;
		} else {
			int64_t st = 0;

			(void)fin_parse_int64(PQgetvalue(res, 0, 1), 100, 599, &st);
			out->status = (int)st;
			out->body = json_tokener_parse(PQgetvalue(res, 0, 2));
			out->replayed = true;
			e = out->body != NULL ? FIN_OK : FIN_E_INTERNAL_ERROR;
		}
		PQclear(res);
		fin_db_rollback(ctx);
		return e;
	}
	PQclear(res);
	if ((e = Fin_txn_insert(ctx, client, user_id, in, &txn)) != FIN_OK)
		goto fail;
	body = json_object_new_object();
	json_object_object_add(body, "transaction", txn);
	out->status = 201;
	out->body = body;
	snprintf(status, sizeof(status), "%d", out->status);
	p[2] = status;
	p[3] = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	if ((e = Fin_db_exec(ctx, &stmt_finish, p, &res)) != FIN_OK)
		goto fail;
	PQclear(res);
	if ((e = fin_db_commit(ctx)) != FIN_OK)
		goto fail_committed;
	fin_cache_invalidate(ctx, user_id);
	return FIN_OK;
fail:
	fin_db_rollback(ctx);
fail_committed:
	json_object_put(out->body);
	out->body = NULL;
	return e;
}
