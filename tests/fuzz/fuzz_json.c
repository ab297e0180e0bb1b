/* Request bodies: the strict JSON parser, then a body spec's validation. */
#include "fuzz.h"

static const struct fin_field spec[] = {
	{ "email",       FIN_F_EMAIL,    true,  3, 254, false },
	{ "name",        FIN_F_TEXT,     false, 1, 100, false },
	{ "amount",      FIN_F_INT64,    false, -9007199254740991LL, 9007199254740991LL, false },
	{ "currency",    FIN_F_CURRENCY, false, 3, 3, false },
	{ "occurred_on", FIN_F_DATE,     false, 10, 10, false },
	{ "enabled",     FIN_F_BOOL,     false, 0, 0, false },
	{ "id",          FIN_F_UUID,     false, 36, 36, false },
	{ NULL,          0,              false, 0, 0, false },
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fin_arena *a;
	struct json_object *o, *fields;
	struct fin_value v[8];

	if (a == NULL)
		a = fin_arena_new(16 * 1024 * 1024);
	if (fin_json_parse_object(a, (const char *)data, size, &o) == FIN_OK &&
	    fin_validate(a, spec, o, v, &fields) == FIN_OK && v[0].s == NULL)
		abort();	/* a required field validated but absent */
	fin_arena_reset(a);
	return 0;
}
