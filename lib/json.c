/*
 * Strict JSON input.  json-c does the parsing; this file adds what an API
 * must refuse and json-c accepts: trailing bytes, invalid UTF-8, nesting
 * deeper than FIN_JSON_MAX_DEPTH, and duplicate keys (which json-c merges,
 * last one winning, so {"amount":1,"amount":-1} would be ambiguous).
 */
#include "setup.h"

#include <math.h>
#include <string.h>

#include "internal.h"

/*
 * Counts the object keys written in the text: a string token followed,
 * after white space, by ':'.  Only called on text json-c accepted.
 */
static size_t
count_text_keys(const char *s, size_t len)
{
	size_t	 i, j, n = 0;
	bool	 in_string = false;

	for (i = 0; i < len; i++) {
		if (in_string) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"') {
				in_string = false;
				for (j = i + 1; j < len && (s[j] == ' ' ||
				    s[j] == '\t' || s[j] == '\n' || s[j] == '\r'); j++)
					;
				if (j < len && s[j] == ':')
					n++;
			}
		} else if (s[i] == '"')
			in_string = true;
	}
	return n;
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
	size_t			 end;

	*out = NULL;
	if (body == NULL || len == 0 || len > INT32_MAX)
		return FIN_E_INVALID_JSON;
	/* JSON text is UTF-8 (RFC 8259): json-c lets overlong forms through. */
	if (!fin_utf8_valid(body, len))
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
	if (count_text_keys(body, len) != count_tree_keys(o)) {
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
