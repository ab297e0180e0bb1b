/*
 * Access tokens: JWTs (RFC 7519) in the JWS compact serialization
 * (RFC 7515), HS256 only.
 *
 * The algorithm is pinned, not read from the token: the "alg" header must
 * say exactly "HS256", and no other value (none, HS512, RS256, hs256) is
 * ever honoured, which closes the alg=none and key-confusion attacks
 * (RFC 8725 §2.1, §3.1).  Verification checks the HMAC, in constant time,
 * before any JSON of the token is parsed, so that without the key an
 * attacker reaches nothing but the base64url decoder.  Every way a token
 * can be wrong comes back as FIN_E_UNAUTHORIZED: the client learns nothing
 * about which check failed.
 */
#include "setup.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

/*
 * Clock skew tolerated between the hosts that sign and verify, applied to
 * exp, nbf and iat alike.  RFC 7519 §4.1.4 allows "a small leeway, usually
 * no more than a few minutes"; 30 s covers NTP-synchronised hosts and keeps
 * a 15-minute token from living noticeably longer.
 */
#define JWT_LEEWAY	30

/* Our claims nest one level (aud may be an array); deeper is not ours. */
#define JWT_JSON_DEPTH	4

#define JWT_SIG_LEN	32	/* HMAC-SHA256 output, bytes */

/*
 * NumericDates outside [0, 9999-12-31T23:59:59Z] are refused, which also
 * keeps every sum with JWT_LEEWAY below from overflowing.
 */
#define JWT_TIME_MAX	INT64_C(253402300799)

/* The only header we sign: exactly these bytes (see fin_jwt_sign). */
static const char jwt_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static bool
hmac_sha256(const unsigned char *key, size_t keylen, const char *data,
    size_t len, unsigned char mac[JWT_SIG_LEN])
{
	_Static_assert(JWT_SIG_LEN == FIN_HMAC_SHA256_LEN, "HS256 is HMAC-SHA256");
	return Fin_hmac_sha256(key, keylen, data, len, mac);
}

/*
 * Decodes one base64url segment and parses it as a JSON object: strict
 * grammar, valid UTF-8, bounded depth, nothing but white space after the
 * value.  json-c keeps the last of duplicate members, which is what
 * RFC 7515 §4 asks of a parser that does not refuse them.  The caller
 * owns *out.
 */
static bool
parse_segment(const char *b64, size_t len, struct json_object **out)
{
	unsigned char		 buf[FIN_JWT_MAX];
	struct json_tokener	*tok;
	struct json_object	*o;
	size_t			 n, end;
	bool			 ok;

	*out = NULL;
	if (!fin_base64url_decode(b64, len, buf, sizeof(buf), &n) || n == 0)
		return false;
	tok = json_tokener_new_ex(JWT_JSON_DEPTH);
	if (tok == NULL)
		return false;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, (const char *)buf, (int)n);
	ok = o != NULL &&
	    json_tokener_get_error(tok) == json_tokener_success &&
	    json_object_is_type(o, json_type_object);
	end = ok ? json_tokener_get_parse_end(tok) : n;
	json_tokener_free(tok);
	for (; end < n; end++)
		if (buf[end] != ' ' && buf[end] != '\t' && buf[end] != '\n' &&
		    buf[end] != '\r')
			ok = false;
	if (!ok) {
		json_object_put(o);
		return false;
	}
	*out = o;
	return true;
}

/*
 * True when o is a JSON string equal to want.  Lengths are compared too:
 * a JSON string may hold "\u0000", and "HS256\u0000x" must not pass for
 * "HS256" by way of strcmp().
 */
static bool
str_is(struct json_object *o, const char *want)
{
	size_t	 wl = strlen(want);

	if (!json_object_is_type(o, json_type_string))
		return false;
	if ((size_t)json_object_get_string_len(o) != wl)
		return false;
	return memcmp(json_object_get_string(o), want, wl) == 0;
}

/* Reads a NumericDate in [0, JWT_TIME_MAX]; only integers are ours. */
static bool
get_time(struct json_object *claims, const char *name, bool required,
    int64_t *out)
{
	struct json_object	*v;
	int64_t			 t;

	*out = 0;
	if (!json_object_object_get_ex(claims, name, &v))
		return !required;
	if (!json_object_is_type(v, json_type_int))
		return false;
	t = json_object_get_int64(v);
	if (t < 0 || t > JWT_TIME_MAX)
		return false;
	*out = t;
	return true;
}

static bool
get_uuid(struct json_object *claims, const char *name, char out[37])
{
	struct json_object	*v;

	if (!json_object_object_get_ex(claims, name, &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) != 36 ||
	    !fin_valid_uuid(json_object_get_string(v)))
		return false;
	memcpy(out, json_object_get_string(v), 37);
	return true;
}

/* RFC 7519 §4.1.3: aud is a string or an array of them; ours must be in it. */
static bool
aud_ok(struct json_object *claims, const char *want)
{
	struct json_object	*v;
	size_t			 i, n;

	if (!json_object_object_get_ex(claims, "aud", &v))
		return false;
	if (json_object_is_type(v, json_type_string))
		return str_is(v, want);
	if (!json_object_is_type(v, json_type_array))
		return false;
	n = json_object_array_length(v);
	for (i = 0; i < n; i++)
		if (str_is(json_object_array_get_idx(v, i), want))
			return true;
	return false;
}

/*
 * The JOSE header: an object whose alg is exactly "HS256", whose typ, if
 * present, is "JWT" (RFC 7519 §5.1), and without crit, since we implement
 * no extension and RFC 7515 §4.1.11 says to refuse what we do not
 * understand.  Other members (kid, ...) choose nothing here and are ignored.
 */
static bool
header_ok(const char *b64, size_t len)
{
	struct json_object	*h, *v;
	bool			 ok;

	if (!parse_segment(b64, len, &h))
		return false;
	ok = json_object_object_get_ex(h, "alg", &v) && str_is(v, "HS256");
	if (ok && json_object_object_get_ex(h, "typ", &v))
		ok = str_is(v, "JWT");
	if (ok && json_object_object_get_ex(h, "crit", NULL))
		ok = false;
	json_object_put(h);
	return ok;
}

/* Adds a member, taking val (which may be NULL after a failed allocation). */
static bool
add(struct json_object *o, const char *key, struct json_object *val)
{
	if (val == NULL)
		return false;
	if (json_object_object_add(o, key, val) != 0) {
		json_object_put(val);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* HS256 over raw key bytes                                            */
/* ------------------------------------------------------------------ */

enum fin_err
fin_jwt_hs256_sign(const unsigned char *key, size_t keylen,
    const char *input, size_t inlen, char *sig, size_t sigsz)
{
	unsigned char	 mac[JWT_SIG_LEN];
	size_t		 n;

	if (sig == NULL || sigsz == 0)
		return FIN_E_INTERNAL_ERROR;
	sig[0] = '\0';
	if (input == NULL || !hmac_sha256(key, keylen, input, inlen, mac))
		return FIN_E_INTERNAL_ERROR;
	n = fin_base64url_encode(mac, sizeof(mac), sig, sigsz);
	OPENSSL_cleanse(mac, sizeof(mac));
	return n == 0 ? FIN_E_INTERNAL_ERROR : FIN_OK;
}

enum fin_err
fin_jwt_hs256_check(const unsigned char *key, size_t keylen,
    const char *token, const char **payload_b64, size_t *payload_len)
{
	unsigned char	 mac[JWT_SIG_LEN], sig[JWT_SIG_LEN];
	const char	*d1, *d2;
	size_t		 n, siglen;
	int		 diff;

	*payload_b64 = NULL;
	*payload_len = 0;
	if (token == NULL)
		return FIN_E_UNAUTHORIZED;
	/* The cap comes before any other work, strlen() included. */
	n = strnlen(token, FIN_JWT_MAX + 1);
	if (n > FIN_JWT_MAX)
		return FIN_E_UNAUTHORIZED;

	/* Exactly three segments: header.payload.signature. */
	d1 = memchr(token, '.', n);
	if (d1 == NULL)
		return FIN_E_UNAUTHORIZED;
	d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - token));
	if (d2 == NULL ||
	    memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - token)) != NULL)
		return FIN_E_UNAUTHORIZED;

	if (!fin_base64url_decode(d2 + 1, n - (size_t)(d2 + 1 - token), sig,
	    sizeof(sig), &siglen) || siglen != JWT_SIG_LEN)
		return FIN_E_UNAUTHORIZED;
	if (!hmac_sha256(key, keylen, token, (size_t)(d2 - token), mac))
		return FIN_E_UNAUTHORIZED;
	diff = CRYPTO_memcmp(mac, sig, JWT_SIG_LEN);
	OPENSSL_cleanse(mac, sizeof(mac));
	if (diff != 0)
		return FIN_E_UNAUTHORIZED;

	/*
	 * The header is read only now that we know we signed it, and even
	 * so its alg must be ours: a token is never verified with an
	 * algorithm it names itself.
	 */
	if (!header_ok(token, (size_t)(d1 - token)))
		return FIN_E_UNAUTHORIZED;
	*payload_b64 = d1 + 1;
	*payload_len = (size_t)(d2 - d1 - 1);
	return FIN_OK;
}

/* ------------------------------------------------------------------ */
/* Access tokens                                                       */
/* ------------------------------------------------------------------ */

enum fin_err
fin_jwt_sign(const struct fin_config *cfg, const struct fin_jwt_claims *c,
    char *out, size_t outsz)
{
	struct json_object	*p;
	const char		*json;
	const unsigned char	*key;
	char			 buf[FIN_JWT_MAX + 1];
	size_t			 jl, n, len;
	bool			 ok;

	if (out == NULL || outsz == 0)
		return FIN_E_INTERNAL_ERROR;
	out[0] = '\0';
	if (cfg == NULL || c == NULL || cfg->jwt_secret == NULL ||
	    cfg->jwt_secret[0] == '\0' || cfg->jwt_issuer == NULL ||
	    cfg->jwt_audience == NULL)
		return FIN_E_INTERNAL_ERROR;
	/* Refuse to mint what fin_jwt_verify would refuse. */
	if (!fin_valid_uuid(c->sub) || !fin_valid_uuid(c->sid) ||
	    !fin_valid_uuid(c->jti) ||
	    c->iat < 0 || c->iat > JWT_TIME_MAX ||
	    c->exp < 0 || c->exp > JWT_TIME_MAX ||
	    c->nbf < 0 || c->nbf > JWT_TIME_MAX)
		return FIN_E_INTERNAL_ERROR;

	p = json_object_new_object();
	if (p == NULL)
		return FIN_E_INTERNAL_ERROR;
	ok = add(p, "iss", json_object_new_string(cfg->jwt_issuer)) &&
	    add(p, "aud", json_object_new_string(cfg->jwt_audience)) &&
	    add(p, "sub", json_object_new_string(c->sub)) &&
	    add(p, "sid", json_object_new_string(c->sid)) &&
	    add(p, "jti", json_object_new_string(c->jti)) &&
	    add(p, "iat", json_object_new_int64(c->iat)) &&
	    (c->nbf == 0 || add(p, "nbf", json_object_new_int64(c->nbf))) &&
	    add(p, "exp", json_object_new_int64(c->exp));
	json = ok ? json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
	if (json == NULL) {
		json_object_put(p);
		return FIN_E_INTERNAL_ERROR;
	}

	/* header "." payload, then "." signature over those bytes. */
	len = fin_base64url_encode((const unsigned char *)jwt_header,
	    sizeof(jwt_header) - 1, buf, sizeof(buf));
	jl = strlen(json);
	if (len == 0 || len + 1 >= sizeof(buf)) {
		json_object_put(p);
		return FIN_E_INTERNAL_ERROR;
	}
	buf[len++] = '.';
	n = fin_base64url_encode((const unsigned char *)json, jl, buf + len,
	    sizeof(buf) - len);
	json_object_put(p);
	if (n == 0)
		return FIN_E_INTERNAL_ERROR;
	len += n;
	if (len + 1 >= sizeof(buf))
		return FIN_E_INTERNAL_ERROR;
	buf[len++] = '.';
	key = (const unsigned char *)cfg->jwt_secret;
	if (fin_jwt_hs256_sign(key, strlen(cfg->jwt_secret), buf, len - 1,
	    buf + len, sizeof(buf) - len) != FIN_OK)
		return FIN_E_INTERNAL_ERROR;
	len += strlen(buf + len);
	if (len > FIN_JWT_MAX || len >= outsz)
		return FIN_E_INTERNAL_ERROR;
	memcpy(out, buf, len + 1);
	return FIN_OK;
}

enum fin_err
fin_jwt_verify(const struct fin_config *cfg, const char *token, int64_t now,
    struct fin_jwt_claims *out)
{
	struct fin_jwt_claims	 c;
	struct json_object	*p, *v;
	const char		*pb64;
	size_t			 plen;
	bool			 ok;

	memset(out, 0, sizeof(*out));
	if (cfg == NULL || cfg->jwt_secret == NULL ||
	    cfg->jwt_secret[0] == '\0' || cfg->jwt_issuer == NULL ||
	    cfg->jwt_audience == NULL)
		return FIN_E_INTERNAL_ERROR;
	if (now < 0 || now > JWT_TIME_MAX)
		return FIN_E_UNAUTHORIZED;
	if (fin_jwt_hs256_check((const unsigned char *)cfg->jwt_secret,
	    strlen(cfg->jwt_secret), token, &pb64, &plen) != FIN_OK)
		return FIN_E_UNAUTHORIZED;
	if (!parse_segment(pb64, plen, &p))
		return FIN_E_UNAUTHORIZED;

	memset(&c, 0, sizeof(c));
	ok = get_time(p, "exp", true, &c.exp) &&
	    get_time(p, "iat", true, &c.iat) &&
	    get_time(p, "nbf", false, &c.nbf) &&
	    /* RFC 7519 §4.1.4: expired from exp on, give or take leeway. */
	    now < c.exp + JWT_LEEWAY &&
	    c.iat <= now + JWT_LEEWAY &&
	    (c.nbf == 0 || c.nbf <= now + JWT_LEEWAY) &&
	    json_object_object_get_ex(p, "iss", &v) &&
	    str_is(v, cfg->jwt_issuer) &&
	    aud_ok(p, cfg->jwt_audience) &&
	    get_uuid(p, "sub", c.sub) &&
	    get_uuid(p, "sid", c.sid) &&
	    get_uuid(p, "jti", c.jti);
	json_object_put(p);
	if (!ok)
		return FIN_E_UNAUTHORIZED;
	*out = c;
	return FIN_OK;
}
