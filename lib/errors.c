/*
 * The tables behind enum fin_err, generated from errors.def so that the
 * enum, the HTTP status, the JSON "code" and the sentence cannot drift.
 */
#include "setup.h"

#include "finance.h"

static const int statuses[FIN_E__MAX] = {
	[FIN_OK] = 200,
#define FIN_ERR(name, status, msg) [FIN_E_##name] = status,
#include "errors.def"
#undef FIN_ERR
};

static const char *const codes[FIN_E__MAX] = {
	[FIN_OK] = "OK",
#define FIN_ERR(name, status, msg) [FIN_E_##name] = #name,
#include "errors.def"
#undef FIN_ERR
};

static const char *const messages[FIN_E__MAX] = {
	[FIN_OK] = "OK",
#define FIN_ERR(name, status, msg) [FIN_E_##name] = msg,
#include "errors.def"
#undef FIN_ERR
};

/* Out-of-range values are a bug in the caller: report them as a 500. */
static enum fin_err
clamp(enum fin_err e)
{
	if ((int)e < 0 || e >= FIN_E__MAX)
		return FIN_E_INTERNAL_ERROR;
	return e;
}

int
fin_err_status(enum fin_err e)
{
	return statuses[clamp(e)];
}

const char *
fin_err_code(enum fin_err e)
{
	return codes[clamp(e)];
}

const char *
fin_err_message(enum fin_err e)
{
	return messages[clamp(e)];
}
