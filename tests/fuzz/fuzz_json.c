/*
 * Request bodies: the strict JSON parser, then validation against the
 * body spec of a route of the real route table (the first byte chooses
 * which; 0 is a spec with one field of every type).
 */
#include "fuzz.h"
#include "app.h"

#include <ctype.h>

static const struct fin_field every_type[] = {
	{ "email",       FIN_F_EMAIL,    true,  3, 254, false },
	{ "name",        FIN_F_TEXT,     false, 1, 100, false },
	{ "amount",      FIN_F_INT64,    false, -9007199254740991LL, 9007199254740991LL, false },
	{ "currency",    FIN_F_CURRENCY, false, 3, 3, false },
	{ "occurred_on", FIN_F_DATE,     false, 10, 10, false },
	{ "enabled",     FIN_F_BOOL,     false, 0, 0, false },
	{ "id",          FIN_F_UUID,     false, 36, 36, false },
	{ "note",        FIN_F_STRING,   false, 0, 200, true },
	{ NULL,          0,              false, 0, 0, false },
};

/* A validated value breaks no promise of its field. */
static bool
value_ok(const struct fin_field *f, const struct fin_value *v)
{
	size_t	 i, chars;

	if (!v->present)
		return !f->required;
	if (v->is_null)
		return f->nullable;
	switch (f->type) {
	case FIN_F_INT64:
		return v->i >= f->min && v->i <= f->max;
	case FIN_F_BOOL:
		return true;
	case FIN_F_DATE:
		return v->s != NULL && fin_valid_date(v->s);
	case FIN_F_UUID:
		return v->s != NULL && fin_valid_uuid(v->s);
	case FIN_F_CURRENCY:
		return v->s != NULL && fin_currency_minor_units(v->s) >= 0;
	default:
		break;
	}
	if (v->s == NULL || strlen(v->s) != v->len ||
	    !fin_utf8_valid(v->s, v->len))
		return false;
	if (f->type == FIN_F_EMAIL)
		for (i = 0; i < v->len; i++)
			if (isupper((unsigned char)v->s[i]) ||
			    isspace((unsigned char)v->s[i]))
				return false;
	if (f->type == FIN_F_TEXT) {
		for (i = 0; i < v->len; i++)
			if ((unsigned char)v->s[i] < 0x20 || v->s[i] == 0x7f)
				return false;
		if (v->len > 0 && (v->s[0] == ' ' || v->s[v->len - 1] == ' '))
			return false;
	}
	if (f->type != FIN_F_EMAIL) {
		chars = fin_utf8_length(v->s, v->len);
		if ((int64_t)chars < f->min || (int64_t)chars > f->max)
			return false;
	}
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fin_arena *a;
	static const struct fin_field *specs[64];
	static size_t	 nspecs;
	const struct fin_field *spec, *f;
	struct json_object *o, *fields;
	struct fin_value v[MAX_BODY_FIELDS];
	size_t		 i;

	if (a == NULL) {
		a = fin_arena_new(ARENA_MAX);
		specs[nspecs++] = every_type;
		for (i = 0; i < nroutes && nspecs < 64; i++)
			if (routes[i].body != NULL)
				specs[nspecs++] = routes[i].body;
	}
	if (size < 1)
		return 0;
	spec = specs[data[0] % nspecs];
	memset(v, 0, sizeof(v));
	if (fin_json_parse_object(a, (const char *)data + 1, size - 1, &o) ==
	    FIN_OK && fin_validate(a, spec, o, v, &fields) == FIN_OK)
		for (f = spec, i = 0; f->name != NULL; f++, i++)
			if (!value_ok(f, &v[i]))
				abort();
	fin_arena_reset(a);
	return 0;
}
