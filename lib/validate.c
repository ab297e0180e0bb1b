/*
 * Request validation: a route names a spec (one row per accepted field),
 * and fin_validate() checks and converts the body in one step, so that a
 * handler only ever sees fields that were present and valid.  Every problem
 * is reported in "fields", all at once, as API.md asks.
 */
#include "setup.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "internal.h"

#define JSON_SAFE_INT	9007199254740991LL	/* 2^53 - 1: exact in every JSON reader */

/* Length in code points of valid UTF-8 (json-c has validated it). */
size_t
fin_utf8_length(const char *s, size_t n)
{
	size_t	 i, len = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			len++;
	return len;
}

/* True when s (n bytes) is well-formed UTF-8 without NUL or overlongs. */
bool
fin_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t	 i = 0;

	while (i < n) {
		unsigned c = p[i];
		size_t	 k;
		uint32_t cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			k = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			k = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			k = 3;
			cp = c & 0x07;
		} else
			return false;
		if (i + k >= n)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + j] & 0x3F);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k + 1;
	}
	return true;
}

/* RFC 5322 atext: what a dot-atom local part is made of, besides dots. */
static bool
is_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL);
}

/*
 * A plain ASCII address, local@domain: a dot-atom local part of at most
 * 64 bytes, and a host name of two or more labels of letters, digits and
 * inner hyphens, the last not all digits.  Quoted local parts, address
 * literals and internationalised addresses are refused: nobody needs them
 * to sign up, and each lets one mailbox be spelled in several ways.
 */
static bool
email_shape(const char *s, size_t n)
{
	const char	*at, *d, *end = s + n, *label;
	size_t		 i, labels = 0;
	bool		 digits_only = true;

	if (n < 3 || n > 254)
		return false;
	at = memchr(s, '@', n);
	if (at == NULL || at == s || at - s > 64)
		return false;
	for (i = 0; s + i < at; i++)
		if (s[i] == '.' ? i == 0 || s[i - 1] == '.' || s + i + 1 == at :
		    !is_atext(s[i]))
			return false;
	for (label = d = at + 1; d <= end; d++) {
		if (d < end && *d != '.') {
			if (!((*d >= 'a' && *d <= 'z') || (*d >= 'A' && *d <= 'Z') ||
			    (*d >= '0' && *d <= '9') || *d == '-'))
				return false;
			continue;
		}
		if (d == label || d - label > 63 || *label == '-' || d[-1] == '-')
			return false;
		labels++;
		digits_only = true;
		for (const char *c = label; c < d; c++)
			if (*c < '0' || *c > '9')
				digits_only = false;
		label = d + 1;
	}
	return labels >= 2 && !digits_only;
}

/*
 * The shape every address had to have before email_shape() was tightened:
 * one '@', no blanks, controls or <>"\\, a dot in the domain.  Login
 * takes it, so that accounts made under the older rule can still log in.
 */
static bool
email_loose(const char *s, size_t n)
{
	const char	*at, *dot;
	size_t		 i;

	if (n < 3 || n > 254)
		return false;
	at = memchr(s, '@', n);
	if (at == NULL || at == s || at - s > 64 ||
	    memchr(at + 1, '@', n - (size_t)(at - s) - 1) != NULL)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f || s[i] == '<' ||
		    s[i] == '>' || s[i] == '"' || s[i] == '\\' || s[i] == ',')
			return false;
	dot = memchr(at + 1, '.', n - (size_t)(at - s) - 1);
	return dot != NULL && dot != at + 1 && s[n - 1] != '.';
}

/* A real calendar date YYYY-MM-DD (2026-02-30 is refused). */
bool
fin_valid_date(const char *s)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int	 y, m, d, i;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return false;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1)
		return false;
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return d <= 29;
	return d <= mdays[m - 1];
}

static const char *
check_string(struct fin_arena *a, const struct fin_field *f,
    struct json_object *v, struct fin_value *out)
{
	const char	*s;
	size_t		 n, chars;

	if (!json_object_is_type(v, json_type_string))
		return "must be a string";
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (strlen(s) != n)
		return "must not contain NUL characters";
	if (!fin_utf8_valid(s, n))
		return "must be valid UTF-8";
	if (f->type == FIN_F_EMAIL || f->type == FIN_F_EMAIL_LOGIN) {
		char	*e;
		size_t	 i;

		/* Trimmed and lower-cased before any check (API.md). */
		while (n > 0 && isspace((unsigned char)*s)) {
			s++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			n--;
		if (!(f->type == FIN_F_EMAIL ? email_shape : email_loose)(s, n))
			return "must be a valid email address";
		e = fin_arena_strndup(a, s, n);
		if (e == NULL)
			return "could not be stored";
		for (i = 0; i < n; i++)
			e[i] = (char)tolower((unsigned char)e[i]);
		out->s = e;
		out->len = n;
		return NULL;
	}
	if (f->type == FIN_F_TEXT) {
		/* Names and labels: no leading/trailing space, no controls. */
		while (n > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			n--;
		}
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		/* C0, DEL, and C1 (U+0080-U+009F, UTF-8 C2 80-C2 9F). */
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f ||
			    ((unsigned char)s[i] == 0xc2 && i + 1 < n &&
			    (unsigned char)s[i + 1] <= 0x9f))
				return "must not contain control characters";
	}
	chars = fin_utf8_length(s, n);
	if ((int64_t)chars < f->min || (int64_t)chars > f->max) {
		const char *msg = fin_arena_printf(a, "must be %lld to %lld "
		    "characters long", (long long)f->min, (long long)f->max);

		return msg != NULL ? msg : "has the wrong length";
	}
	if (f->type == FIN_F_DATE && !fin_valid_date(s))
		return "must be a real date YYYY-MM-DD";
	if (f->type == FIN_F_UUID && !fin_valid_uuid(s))
		return "must be a UUID";
	if (f->type == FIN_F_CURRENCY && fin_currency_minor_units(s) < 0)
		return "must be an active ISO 4217 currency code (e.g. EUR)";
	out->s = fin_arena_strndup(a, s, n);
	out->len = n;
	return out->s != NULL ? NULL : "could not be stored";
}

static const char *
check_int(struct fin_arena *a, const struct fin_field *f,
    struct json_object *v, struct fin_value *out)
{
	int64_t	 i;

	/* json-c keeps integers and doubles apart: 1.0 and 1e3 are doubles. */
	if (!json_object_is_type(v, json_type_int))
		return "must be an integer";
	errno = 0;
	i = json_object_get_int64(v);
	if (errno != 0 || i < -JSON_SAFE_INT || i > JSON_SAFE_INT ||
	    (i == INT64_MAX || i == INT64_MIN))
		return "must be an integer between -9007199254740991 and "
		    "9007199254740991";
	if (i < f->min || i > f->max) {
		const char *msg = fin_arena_printf(a, "must be between %lld and "
		    "%lld", (long long)f->min, (long long)f->max);

		return msg != NULL ? msg : "is out of range";
	}
	out->i = i;
	return NULL;
}

enum fin_err
fin_validate(struct fin_arena *a, const struct fin_field *spec,
    struct json_object *body, struct fin_value *out,
    struct json_object **fields)
{
	const struct fin_field *f;
	struct json_object	*errs, *v;
	const char		*why;
	size_t			 i, n = 0;
	bool			 known;

	*fields = NULL;
	errs = fin_arena_json(a, json_object_new_object());
	if (errs == NULL)
		return FIN_E_INTERNAL_ERROR;
	for (f = spec, i = 0; f->name != NULL; f++, i++) {
		memset(&out[i], 0, sizeof(out[i]));
		if (!json_object_object_get_ex(body, f->name, &v)) {
			if (f->required) {
				json_object_object_add(errs, f->name,
				    json_object_new_string("is required"));
				n++;
			}
			continue;
		}
		if (json_object_is_type(v, json_type_null) && !f->required &&
		    f->nullable) {
			out[i].present = true;
			out[i].is_null = true;
			continue;
		}
		switch (f->type) {
		case FIN_F_INT64:
			why = check_int(a, f, v, &out[i]);
			break;
		case FIN_F_BOOL:
			why = json_object_is_type(v, json_type_boolean) ? NULL :
			    "must be true or false";
			if (why == NULL)
				out[i].b = json_object_get_boolean(v);
			break;
		default:
			why = check_string(a, f, v, &out[i]);
			break;
		}
		if (why != NULL) {
			json_object_object_add(errs, f->name,
			    json_object_new_string(why));
			n++;
		} else
			out[i].present = true;
	}
	/* Unknown fields are refused: a typo must not be silently ignored. */
	json_object_object_foreach(body, k, val) {
		(void)val;
		known = false;
		for (f = spec; f->name != NULL; f++)
			if (strcmp(f->name, k) == 0)
				known = true;
		if (!known) {
			json_object_object_add(errs, k,
			    json_object_new_string("is not a known field"));
			n++;
		}
	}
	if (n == 0)
		return FIN_OK;
	*fields = errs;
	return FIN_E_VALIDATION_ERROR;
}
