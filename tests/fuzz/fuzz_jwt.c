/*
 * Access tokens.  An input whose first byte is odd is a token as sent: a
 * random one that verifies would be a forgery.  Otherwise the rest is a
 * JOSE header and a claims set, one line each, that this target encodes
 * and signs with the secret, so that the claim checks behind the
 * signature are fuzzed too: a token accepted then must carry every claim
 * the server relies on, as an independent reading of the payload says.
 */
#include "fuzz.h"

#include <json.h>

#define NOW	INT64_C(1795515300)

static bool
string_is(struct json_object *o, const char *key, const char *want)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string) &&
	    (size_t)json_object_get_string_len(v) == strlen(want) &&
	    strcmp(json_object_get_string(v), want) == 0;
}

/* What fin_jwt_verify promised, checked on the claims text itself. */
static bool
claims_ok(const char *text, size_t len, const struct fin_jwt_claims *c)
{
	struct json_tokener *t = json_tokener_new();
	struct json_object *o, *v;
	bool		 ok;

	if (t == NULL)
		abort();
	o = json_tokener_parse_ex(t, text, (int)len);
	json_tokener_free(t);
	if (o == NULL)
		return false;
	ok = string_is(o, "iss", fuzz_cfg.jwt_issuer) &&
	    string_is(o, "sub", c->sub) && fin_valid_uuid(c->sub) &&
	    string_is(o, "sid", c->sid) && fin_valid_uuid(c->sid) &&
	    string_is(o, "jti", c->jti) && fin_valid_uuid(c->jti) &&
	    json_object_object_get_ex(o, "exp", &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) == c->exp && c->exp + 30 > NOW &&
	    json_object_object_get_ex(o, "iat", &v) &&
	    json_object_get_int64(v) == c->iat && c->iat <= NOW + 30 &&
	    json_object_object_get_ex(o, "aud", NULL);
	json_object_put(o);
	return ok;
}

static void
signed_token(const uint8_t *data, size_t size)
{
	const uint8_t	*nl = memchr(data, '\n', size);
	size_t		 hlen, plen, n;
	char		 tok[8192], sig[64];
	struct fin_jwt_claims c;

	if (nl == NULL)
		return;
	hlen = (size_t)(nl - data);
	plen = size - hlen - 1;
	if (hlen == 0 || plen == 0 || (hlen + plen) * 4 / 3 + 64 > sizeof(tok))
		return;
	n = fin_base64url_encode(data, hlen, tok, sizeof(tok));
	tok[n++] = '.';
	n += fin_base64url_encode(nl + 1, plen, tok + n, sizeof(tok) - n);
	if (fin_jwt_hs256_sign((const unsigned char *)fuzz_cfg.jwt_secret,
	    strlen(fuzz_cfg.jwt_secret), tok, n, sig, sizeof(sig)) != FIN_OK)
		abort();
	snprintf(tok + n, sizeof(tok) - n, ".%s", sig);
	if (fin_jwt_verify(&fuzz_cfg, tok, NOW, &c) == FIN_OK &&
	    !claims_ok((const char *)nl + 1, plen, &c))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin_jwt_claims c;
	char	*s;

	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0) {
		signed_token(data + 1, size - 1);
		return 0;
	}
	s = fuzz_string(data + 1, size - 1);
	if (fin_jwt_verify(&fuzz_cfg, s, NOW, &c) == FIN_OK)
		abort();
	free(s);
	return 0;
}
