/*
 * The worker context: one PostgreSQL and one Redis connection, both
 * opened lazily so that a worker starts (and answers /health) while a
 * dependency is down.  Owned by the worker; fin_ctx_free closes both.
 */
#include "setup.h"

#include <stdlib.h>

#include "internal.h"

struct fin_ctx *
fin_ctx_new(const struct fin_config *cfg)
{
	struct fin_ctx	*ctx;

	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return NULL;
	ctx->cfg = cfg;
	ctx->db_answer_ms = Fin_db_answer_ms(cfg);
	return ctx;
}

void
fin_ctx_free(struct fin_ctx *ctx)
{
	if (ctx == NULL)
		return;
	if (ctx->pg != NULL)
		PQfinish(ctx->pg);
	if (ctx->redis != NULL)
		redisFree(ctx->redis);
	free(ctx);
}

const struct fin_config *
fin_ctx_config(const struct fin_ctx *ctx)
{
	return ctx->cfg;
}
