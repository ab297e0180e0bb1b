/*
 * Strict JSON input.  json-c does the parsing; this file adds what an API
 * must refuse and json-c accepts: trailing bytes, invalid UTF-8, nesting
 * deeper than FIN_JSON_MAX_DEPTH, more than JSON_ITEMS_MAX values, and
 * duplicate keys (which json-c merges, last one winning, so
 * {"amount":1,"amount":-1} would be ambiguous).
 */
#include "setup.h"

#include <math.h>
#include <string.h>

#include "internal.h"

/*
 * Members and array elements a body may hold in all.  json-c allocates
 * every value on its own, an object with a table of 16 slots: a 1 MiB
 * body of "{}," made 350,000 objects, 280 MB in the worker, which glibc
 * kept after the request.  The API's bodies are a few flat members.
 */
#define JSON_ITEMS_MAX	1024

/* The value of \uXXXX at s (after the backslash), or -1. */
static long
escape_value(const char *s, size_t left)
{
	long	 v = 0;
	size_t	 i;

	if (left < 5 || s[0] != 'u')
		return -1;
	for (i = 1; i <= 4; i++) {
		char	 c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * Counts the object keys written in the text (a string token followed,
 * after white space, by ':') and refuses lone UTF-16 surrogates in \u
 * escapes, which json-c would quietly turn into U+FFFD, and raw control
 * characters in strings.  Only called on text json-c accepted.
 */
static bool
scan_text(const char *s, size_t len, size_t *keys)
{
	size_t	 i, j;
	long	 u, lo;
	bool	 in_string = false;

	*keys = 0;
	for (i = 0; i < len; i++) {
		if (!in_string) {
			if (s[i] == '"')
				in_string = true;
			continue;
		}
		/* RFC 8259 §7: controls in strings must be escaped; json-c
		 * takes them raw even when strict. */
		if ((unsigned char)s[i] < 0x20)
			return false;
		if (s[i] == '\\') {
			u = escape_value(s + i + 1, len - i - 1);
			if (u >= 0xDC00 && u <= 0xDFFF)
				return false;
			if (u >= 0xD800 && u <= 0xDBFF) {
				/* s[i] is the backslash; the pair's second
				 * half starts six bytes on. */
				lo = i + 7 < len && s[i + 6] == '\\' ?
				    escape_value(s + i + 7, len - i - 7) : -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return false;
				i += 6;
			}
			i++;
		} else if (s[i] == '"') {
			in_string = false;
			for (j = i + 1; j < len && (s[j] == ' ' || s[j] == '\t' ||
			    s[j] == '\n' || s[j] == '\r'); j++)
				;
			if (j < len && s[j] == ':')
				(*keys)++;
		}
	}
	return true;
}

/*
 * Whether the text holds at most JSON_ITEMS_MAX members and elements:
 * outside strings, every ',' adds one and every '{' or '[' may open one.
 * Runs before json-c on any text, so it counts and does not parse.
 */
static bool
few_items(const char *s, size_t len)
{
	size_t	 i, n = 0;
	bool	 in_string = false;

	for (i = 0; i < len; i++) {
		if (in_string) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_string = false;
			continue;
		}
		if (s[i] == '"')
			in_string = true;
		else if ((s[i] == ',' || s[i] == '{' || s[i] == '[') &&
		    ++n > JSON_ITEMS_MAX)
			return false;
	}
	return true;
}

/* Keys in the tree; a non-finite number counts as a huge mismatch. */
static size_t
count_tree_keys(struct json_object *o)
{
	size_t	 n = 0, i, len;

	switch (json_object_get_type(o)) {
	case json_type_object: {
		json_object_object_foreach(o, k, v) {
			(void)k;
			n += 1 + count_tree_keys(v);
		}
		return n;
	}
	case json_type_double:
		/* json-c reads NaN and Infinity, which are not JSON. */
		return isfinite(json_object_get_double(o)) ? 0 : SIZE_MAX / 2;
	case json_type_array:
		len = json_object_array_length(o);
		for (i = 0; i < len; i++)
			n += count_tree_keys(json_object_array_get_idx(o, i));
		return n;
	default:
		return 0;
	}
}

enum fin_err
fin_json_parse_object(struct fin_arena *a, const char *body, size_t len,
    struct json_object **out)
{
	struct json_tokener	*tok;
	struct json_object	*o;
	size_t			 end, keys;

	*out = NULL;
	if (body == NULL || len == 0 || len > INT32_MAX)
		return FIN_E_INVALID_JSON;
	/* JSON text is UTF-8 (RFC 8259): json-c lets overlong forms through. */
	if (!fin_utf8_valid(body, len) || !few_items(body, len))
		return FIN_E_INVALID_JSON;
	tok = json_tokener_new_ex(FIN_JSON_MAX_DEPTH);
	if (tok == NULL)
		return FIN_E_INTERNAL_ERROR;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, body, (int)len);
	end = json_tokener_get_parse_end(tok);
	/* A bare number may go on: a NUL tells json-c the input has ended. */
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_continue) {
		o = json_tokener_parse_ex(tok, "", 1);
		end = len;
	}
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_success) {
		/* The body was the literal null: valid JSON, not an object. */
		json_tokener_free(tok);
		return FIN_E_INVALID_BODY;
	}
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		json_tokener_free(tok);
		return FIN_E_INVALID_JSON;
	}
	json_tokener_free(tok);
	for (; end < len; end++)
		if (body[end] != ' ' && body[end] != '\t' &&
		    body[end] != '\n' && body[end] != '\r') {
			json_object_put(o);
			return FIN_E_INVALID_JSON;
		}
	if (!scan_text(body, len, &keys) || keys != count_tree_keys(o)) {
		json_object_put(o);
		return FIN_E_INVALID_JSON;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return FIN_E_INVALID_BODY;
	}
	if (fin_arena_json(a, o) == NULL)
		return FIN_E_INTERNAL_ERROR;
	*out = o;
	return FIN_OK;
}
