/*
 * Access tokens: the RFC 7515 HS256 known answer, sign/verify round trips,
 * the attacks a JWT verifier must withstand (alg none and alg swaps,
 * tampering, truncation, foreign keys, malformed segments, oversized
 * tokens) and the claim checks (times with leeway, iss, aud, UUIDs).
 *
 * Most attack tokens carry a correct HS256 signature made with the real
 * key, so that each one is refused by the check it is about and not merely
 * by the signature.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "internal.h"
#include "unit.h"

#define SECRET		"0123456789abcdef0123456789abcdef-jwt-test-key"
#define ISSUER		"libfinance"
#define AUDIENCE	"libfinance-api"
#define SUB		"6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f"
#define SID		"1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
#define JTI		"7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define NOW		INT64_C(1700000000)
#define TTL		900
#define HDR		"{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static char	 secret[] = SECRET;
static char	 other_secret[] = "another-key-of-at-least-32-bytes-for-tests";
static char	 issuer[] = ISSUER;
static char	 audience[] = AUDIENCE;
static char	 other[] = "someone-else";

static struct fin_config cfg;

static void
setup(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.jwt_secret = secret;
	cfg.jwt_issuer = issuer;
	cfg.jwt_audience = audience;
}

static struct fin_jwt_claims
claims(void)
{
	struct fin_jwt_claims c;

	memset(&c, 0, sizeof(c));
	memcpy(c.sub, SUB, sizeof(SUB));
	memcpy(c.sid, SID, sizeof(SID));
	memcpy(c.jti, JTI, sizeof(JTI));
	c.iat = NOW;
	c.exp = NOW + TTL;
	return c;
}

/* fin_jwt_verify at NOW, claims discarded. */
static enum fin_err
verify(const char *tok)
{
	struct fin_jwt_claims out;

	return fin_jwt_verify(&cfg, tok, NOW, &out);
}

/* Signs c with cfg and returns the verdict of fin_jwt_verify at now. */
static enum fin_err
sign_verify(const struct fin_jwt_claims *c, int64_t now)
{
	struct fin_jwt_claims out;
	char		 tok[FIN_JWT_MAX + 1];

	ck_assert_int_eq(fin_jwt_sign(&cfg, c, tok, sizeof(tok)), FIN_OK);
	return fin_jwt_verify(&cfg, tok, now, &out);
}

/*
 * Builds header.payload from raw text segments (already base64url or
 * not, as given) and appends the HS256 signature over them with key.
 */
static void
mint_raw(const char *h64, const char *p64, const char *key, char *out,
    size_t outsz)
{
	char	 sig[64];
	int	 n;

	n = snprintf(out, outsz, "%s.%s", h64, p64);
	ck_assert(n > 0 && (size_t)n < outsz);
	ck_assert_int_eq(fin_jwt_hs256_sign((const unsigned char *)key,
	    strlen(key), out, (size_t)n, sig, sizeof(sig)), FIN_OK);
	ck_assert_uint_lt((size_t)n + 1 + strlen(sig), outsz);
	out[n] = '.';
	memcpy(out + n + 1, sig, strlen(sig) + 1);
}

/* Same, from JSON texts that are base64url-encoded first. */
static void
mint(const char *header, const char *payload, const char *key, char *out,
    size_t outsz)
{
	char	 h64[FIN_BASE64URL_SIZE(512)];
	char	*p64;
	size_t	 psz = FIN_BASE64URL_SIZE(strlen(payload));

	p64 = malloc(psz);
	ck_assert_ptr_nonnull(p64);
	ck_assert_uint_gt(fin_base64url_encode((const unsigned char *)header,
	    strlen(header), h64, sizeof(h64)), 0);
	ck_assert_uint_gt(fin_base64url_encode((const unsigned char *)payload,
	    strlen(payload), p64, psz), 0);
	mint_raw(h64, p64, key, out, outsz);
	free(p64);
}

/* A payload with every claim right, then extra members. */
static void
payload(char *buf, size_t sz, const char *extra)
{
	int	 n;

	n = snprintf(buf, sz, "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
	    "\",\"sub\":\"" SUB "\",\"sid\":\"" SID "\",\"jti\":\"" JTI
	    "\",\"iat\":%lld,\"exp\":%lld%s}", (long long)NOW,
	    (long long)(NOW + TTL), extra);
	ck_assert(n > 0 && (size_t)n < sz);
}

/*
 * Sets one of the zero bits that end an encoding whose length is not a
 * multiple of 4: the same bytes, spelt a second way.
 */
static void
noncanonical(char *b64)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t	 n = strlen(b64);
	char	*at;

	ck_assert_uint_ne(n % 4, 0);
	at = strchr(abc, b64[n - 1]);
	ck_assert_ptr_nonnull(at);
	b64[n - 1] = at[1];
}

static enum fin_err
verify_json(const char *header, const char *pl)
{
	char		 tok[2 * FIN_JWT_MAX];

	mint(header, pl, SECRET, tok, sizeof(tok));
	return verify(tok);
}

static enum fin_err
verify_header(const char *header)
{
	char	 pl[1024];

	payload(pl, sizeof(pl), "");
	return verify_json(header, pl);
}

/* ------------------------------------------------------------------ */
/* core                                                                */
/* ------------------------------------------------------------------ */

/* RFC 7515 appendix A.1: the HS256 example, verbatim. */
#define A1_KEY	"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aK" \
		"tMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
#define A1_HDR	"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
#define A1_PAY	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0" \
		"dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
#define A1_SIG	"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

START_TEST(test_jwt_rfc7515_a1_vector)
{
	unsigned char	 key[64];
	char		 sig[64];
	const char	*p;
	size_t		 keylen, plen;

	/* The JWK "k" member, base64url-decoded: 64 bytes. */
	ck_assert(fin_base64url_decode(A1_KEY, strlen(A1_KEY), key,
	    sizeof(key), &keylen));
	ck_assert_uint_eq(keylen, 64);

	ck_assert_int_eq(fin_jwt_hs256_check(key, keylen,
	    A1_HDR "." A1_PAY "." A1_SIG, &p, &plen), FIN_OK);
	ck_assert_uint_eq(plen, strlen(A1_PAY));
	ck_assert(memcmp(p, A1_PAY, plen) == 0);

	ck_assert_int_eq(fin_jwt_hs256_sign(key, keylen, A1_HDR "." A1_PAY,
	    strlen(A1_HDR "." A1_PAY), sig, sizeof(sig)), FIN_OK);
	ck_assert_str_eq(sig, A1_SIG);

	/* One bit of the key changed and the example no longer verifies. */
	key[0] ^= 1;
	ck_assert_int_eq(fin_jwt_hs256_check(key, keylen,
	    A1_HDR "." A1_PAY "." A1_SIG, &p, &plen), FIN_E_UNAUTHORIZED);
	ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_jwt_round_trip)
{
	struct fin_jwt_claims c = claims(), out;
	char		 tok[FIN_JWT_MAX + 1];

	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)), FIN_OK);
	ck_assert_int_eq(fin_jwt_verify(&cfg, tok, NOW + 60, &out), FIN_OK);
	ck_assert_str_eq(out.sub, SUB);
	ck_assert_str_eq(out.sid, SID);
	ck_assert_str_eq(out.jti, JTI);
	ck_assert_int_eq(out.iat, NOW);
	ck_assert_int_eq(out.exp, NOW + TTL);
	ck_assert_int_eq(out.nbf, 0);

	c.nbf = NOW;
	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)), FIN_OK);
	ck_assert_int_eq(fin_jwt_verify(&cfg, tok, NOW, &out), FIN_OK);
	ck_assert_int_eq(out.nbf, NOW);
}
END_TEST

START_TEST(test_jwt_header_is_exact)
{
	struct fin_jwt_claims c = claims();
	char		 tok[FIN_JWT_MAX + 1];
	unsigned char	 hdr[128];
	const char	*dot;
	size_t		 n;

	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)), FIN_OK);
	dot = strchr(tok, '.');
	ck_assert_ptr_nonnull(dot);
	ck_assert(fin_base64url_decode(tok, (size_t)(dot - tok), hdr,
	    sizeof(hdr), &n));
	ck_assert_uint_eq(n, strlen(HDR));
	ck_assert(memcmp(hdr, HDR, n) == 0);
}
END_TEST

START_TEST(test_jwt_sign_refuses_bad_input)
{
	struct fin_jwt_claims c = claims();
	char		 tok[FIN_JWT_MAX + 1];
	char		 nokey[] = "";

	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, 100),
	    FIN_E_INTERNAL_ERROR);
	ck_assert_str_eq(tok, "");
	memcpy(c.sub, "not-a-uuid", sizeof("not-a-uuid"));
	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)),
	    FIN_E_INTERNAL_ERROR);
	c = claims();
	c.exp = -1;
	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)),
	    FIN_E_INTERNAL_ERROR);
	c = claims();
	cfg.jwt_secret = nokey;
	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)),
	    FIN_E_INTERNAL_ERROR);
}
END_TEST

START_TEST(test_jwt_verify_zeroes_claims_on_failure)
{
	struct fin_jwt_claims out;

	memset(&out, 'x', sizeof(out));
	ck_assert_int_eq(fin_jwt_verify(&cfg, "a.b.c", NOW, &out),
	    FIN_E_UNAUTHORIZED);
	ck_assert_str_eq(out.sub, "");
	ck_assert_int_eq(out.exp, 0);
	ck_assert_int_eq(fin_jwt_verify(&cfg, NULL, NOW, &out),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify(""), FIN_E_UNAUTHORIZED);
}
END_TEST

/* ------------------------------------------------------------------ */
/* attacks                                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_jwt_alg_none)
{
	char		 pl[1024], p64[2048], tok[4096];
	int		 n;

	payload(pl, sizeof(pl), "");
	ck_assert_uint_gt(fin_base64url_encode((const unsigned char *)pl,
	    strlen(pl), p64, sizeof(p64)), 0);
	/* The classic form: alg none and an empty signature. */
	/* {"alg":"none","typ":"JWT"} */
	n = snprintf(tok, sizeof(tok), "%s.%s.",
	    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", p64);
	ck_assert(n > 0 && (size_t)n < sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	/* Even with a valid HS256 signature, "none" is not our alg. */
	ck_assert_int_eq(verify_header("{\"alg\":\"none\",\"typ\":\"JWT\"}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_header("{\"alg\":\"None\"}"),
	    FIN_E_UNAUTHORIZED);
	/* The control: the same payload with our header passes. */
	ck_assert_int_eq(verify_header(HDR), FIN_OK);
}
END_TEST

START_TEST(test_jwt_alg_hs512)
{
	unsigned char	 mac[EVP_MAX_MD_SIZE];
	unsigned int	 maclen;
	char		 pl[1024], tok[4096], sig[128];
	size_t		 n;

	/* Signed for real with HMAC-SHA512 and the same key. */
	payload(pl, sizeof(pl), "");
	mint("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", pl, SECRET, tok,
	    sizeof(tok));
	*strrchr(tok, '.') = '\0';
	n = strlen(tok);
	ck_assert_ptr_nonnull(HMAC(EVP_sha512(), SECRET, (int)strlen(SECRET),
	    (const unsigned char *)tok, n, mac, &maclen));
	ck_assert_uint_gt(fin_base64url_encode(mac, maclen, sig, sizeof(sig)),
	    0);
	tok[n] = '.';
	memcpy(tok + n + 1, sig, strlen(sig) + 1);
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	/* And with an HS256 signature over an HS512 header. */
	ck_assert_int_eq(verify_header("{\"alg\":\"HS512\",\"typ\":\"JWT\"}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_header("{\"alg\":\"HS384\"}"),
	    FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_alg_rs256)
{
	/*
	 * Key confusion: an RS256 header over an HMAC made with a key the
	 * verifier holds must not switch the verifier to anything.
	 */
	ck_assert_int_eq(verify_header("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_header("{\"alg\":\"ES256\",\"typ\":\"JWT\"}"),
	    FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_alg_pinned_exactly)
{
	ck_assert_int_eq(verify_header("{\"alg\":\"hs256\",\"typ\":\"JWT\"}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_header("{\"alg\":\"HS256 \"}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_header("{\"alg\":\"HS256\\u0000\"}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_header("{\"alg\":[\"HS256\"]}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_header("{\"typ\":\"JWT\"}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_header("{\"alg\":null}"),
	    FIN_E_UNAUTHORIZED);
	/* typ is optional, but if present it says JWT. */
	ck_assert_int_eq(verify_header("{\"alg\":\"HS256\"}"), FIN_OK);
	ck_assert_int_eq(verify_header("{\"alg\":\"HS256\",\"typ\":\"JWS\"}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_header("{\"alg\":\"HS256\",\"typ\":1}"),
	    FIN_E_UNAUTHORIZED);
	/* No extension is understood, so none may be critical. */
	ck_assert_int_eq(verify_header(
	    "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}"),
	    FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_payload_changed_one_byte)
{
	struct fin_jwt_claims c = claims();
	char		 tok[FIN_JWT_MAX + 1], p64[FIN_JWT_MAX];
	char		 fixed[2 * FIN_JWT_MAX];
	unsigned char	 pl[FIN_JWT_MAX];
	char		*d1, *d2, *at;
	size_t		 n;

	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)), FIN_OK);
	d1 = strchr(tok, '.');
	d2 = strrchr(tok, '.');
	ck_assert(fin_base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), pl,
	    sizeof(pl), &n));
	/* Push exp a year on: one digit. */
	pl[n] = '\0';
	at = strstr((char *)pl, "\"exp\":17");
	ck_assert_ptr_nonnull(at);
	at[7] = '8';
	ck_assert_uint_gt(fin_base64url_encode(pl, n, p64, sizeof(p64)), 0);
	*d1 = '\0';
	ck_assert_int_lt(snprintf(fixed, sizeof(fixed), "%s.%s%s", tok, p64,
	    d2), (int)sizeof(fixed));
	ck_assert_int_eq(verify(fixed), FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_signature_truncated)
{
	struct fin_jwt_claims c = claims();
	char		 tok[FIN_JWT_MAX + 1];
	size_t		 n;

	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)), FIN_OK);
	n = strlen(tok);
	tok[n - 1] = '\0';
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	/* 40 characters: a valid base64url length, 30 bytes. */
	tok[n - 3] = '\0';
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	/* No signature at all. */
	*(strrchr(tok, '.') + 1) = '\0';
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_signature_of_another_key)
{
	struct fin_jwt_claims c = claims();
	char		 tok[FIN_JWT_MAX + 1];

	cfg.jwt_secret = other_secret;
	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)), FIN_OK);
	ck_assert_int_eq(verify(tok), FIN_OK);
	cfg.jwt_secret = secret;
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_bad_base64url_in_each_segment)
{
	struct fin_jwt_claims c = claims();
	char		 good[FIN_JWT_MAX + 1], tok[2 * FIN_JWT_MAX];
	char		 pl[1024], h64[128], p64[2048], padded[2100];
	char		*d1, *d2;

	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, good, sizeof(good)), FIN_OK);
	d1 = strchr(good, '.');
	d2 = strrchr(good, '.');

	/* Signature: padded, standard alphabet, stray character. */
	snprintf(tok, sizeof(tok), "%s=", good);
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	memcpy(tok, good, strlen(good) + 1);
	tok[d2 - good + 1] = '+';
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	tok[d2 - good + 1] = '!';
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);

	/* Header and payload: a bad character breaks the signature... */
	memcpy(tok, good, strlen(good) + 1);
	tok[1] = '*';
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	memcpy(tok, good, strlen(good) + 1);
	tok[d1 - good + 1] = '/';
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);

	/* ...and is refused even when the signature covers it. */
	payload(pl, sizeof(pl), "");
	ck_assert_uint_gt(fin_base64url_encode((const unsigned char *)HDR,
	    strlen(HDR), h64, sizeof(h64)), 0);
	ck_assert_uint_gt(fin_base64url_encode((const unsigned char *)pl,
	    strlen(pl), p64, sizeof(p64)), 0);
	mint_raw(h64, p64, SECRET, tok, sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_OK);
	/* HDR is 27 bytes, 36 characters: padding or '+' cannot be ours. */
	mint_raw("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9=", p64, SECRET, tok,
	    sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	mint_raw("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9+", p64, SECRET, tok,
	    sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	/*
	 * {"alg":"HS256" } is 16 bytes: its last character carries 4 zero
	 * bits, and setting one gives a second spelling of the same header.
	 */
	ck_assert_uint_eq(fin_base64url_encode((const unsigned char *)
	    "{\"alg\":\"HS256\" }", 16, h64, sizeof(h64)), 22);
	mint_raw(h64, p64, SECRET, tok, sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_OK);
	noncanonical(h64);
	mint_raw(h64, p64, SECRET, tok, sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	ck_assert_uint_gt(fin_base64url_encode((const unsigned char *)HDR,
	    strlen(HDR), h64, sizeof(h64)), 0);

	/* The payload: padded, a space inside, a non-canonical last bit. */
	while (strlen(pl) % 3 != 1) {
		ck_assert_uint_lt(strlen(pl) + 1, sizeof(pl));
		memmove(pl + 1, pl, strlen(pl) + 1);
		pl[0] = ' ';
	}
	ck_assert_uint_gt(fin_base64url_encode((const unsigned char *)pl,
	    strlen(pl), p64, sizeof(p64)), 0);
	mint_raw(h64, p64, SECRET, tok, sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_OK);
	snprintf(padded, sizeof(padded), "%s==", p64);
	mint_raw(h64, padded, SECRET, tok, sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	noncanonical(p64);
	mint_raw(h64, p64, SECRET, tok, sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	p64[3] = ' ';
	mint_raw(h64, p64, SECRET, tok, sizeof(tok));
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_two_or_four_segments)
{
	struct fin_jwt_claims c = claims();
	char		 good[FIN_JWT_MAX + 1], tok[2 * FIN_JWT_MAX];
	char		 sig[64];
	char		*d2;

	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, good, sizeof(good)), FIN_OK);
	d2 = strrchr(good, '.');

	/* Two segments: header.payload, signed or not. */
	memcpy(tok, good, (size_t)(d2 - good));
	tok[d2 - good] = '\0';
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);

	/* Four: a valid token with a fourth segment, or an extra dot. */
	snprintf(tok, sizeof(tok), "%s.%s", good, d2 + 1);
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	snprintf(tok, sizeof(tok), "%s.", good);
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	/* Four segments whose last one is a signature of the first three. */
	memcpy(tok, good, strlen(good) + 1);
	ck_assert_int_eq(fin_jwt_hs256_sign((const unsigned char *)SECRET,
	    strlen(SECRET), tok, strlen(tok), sig, sizeof(sig)), FIN_OK);
	snprintf(tok, sizeof(tok), "%s.%s", good, sig);
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);

	ck_assert_int_eq(verify(".."), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify("."), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify("abc"), FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_over_long_token)
{
	char		*tok, *pl, *pad;
	size_t		 f, len = 0;

	tok = malloc(2 * FIN_JWT_MAX);
	pl = malloc(FIN_JWT_MAX);
	pad = malloc(FIN_JWT_MAX);
	ck_assert(tok != NULL && pl != NULL && pad != NULL);

	/* Grow an extra claim until the signed token is exactly the cap. */
	for (f = 2000; f < 3100; f++) {
		memset(pad, 'a', f);
		memcpy(pad, ",\"pad\":\"", 8);
		memcpy(pad + f - 1, "\"", 2);
		payload(pl, FIN_JWT_MAX, pad);
		mint(HDR, pl, SECRET, tok, 2 * FIN_JWT_MAX);
		len = strlen(tok);
		if (len >= FIN_JWT_MAX)
			break;
	}
	ck_assert_uint_eq(len, FIN_JWT_MAX);
	ck_assert_int_eq(verify(tok), FIN_OK);

	/* One character more, correctly signed, is refused. */
	for (f++; len == FIN_JWT_MAX; f++) {
		memset(pad, 'a', f);
		memcpy(pad, ",\"pad\":\"", 8);
		memcpy(pad + f - 1, "\"", 2);
		payload(pl, FIN_JWT_MAX, pad);
		mint(HDR, pl, SECRET, tok, 2 * FIN_JWT_MAX);
		len = strlen(tok);
	}
	ck_assert_uint_gt(len, FIN_JWT_MAX);
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);

	/* And a megabyte of dots and letters costs nothing. */
	free(tok);
	tok = malloc(1 << 20);
	ck_assert_ptr_nonnull(tok);
	memset(tok, 'a', (1 << 20) - 1);
	tok[(1 << 20) - 1] = '\0';
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	free(tok);
	free(pl);
	free(pad);
}
END_TEST

START_TEST(test_jwt_non_object_header_or_payload)
{
	char	 pl[1024], pl2[1100];

	payload(pl, sizeof(pl), "");
	ck_assert_int_eq(verify_json("[\"HS256\"]", pl), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json("\"HS256\"", pl), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json("null", pl), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json("1", pl), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json("{\"alg\":\"HS256\"", pl),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json(HDR "x", pl), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json(HDR, "[1]"), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json(HDR, "true"), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json(HDR, "null"), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json(HDR, "\"x\""), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_json(HDR, "{"), FIN_E_UNAUTHORIZED);
	/* Trailing bytes after a good payload; white space is JSON's own. */
	snprintf(pl2, sizeof(pl2), "%s {}", pl);
	ck_assert_int_eq(verify_json(HDR, pl2), FIN_E_UNAUTHORIZED);
	snprintf(pl2, sizeof(pl2), "\r\n %s \n", pl);
	ck_assert_int_eq(verify_json(HDR, pl2), FIN_OK);
	/* Invalid UTF-8 inside a string. */
	payload(pl, sizeof(pl), ",\"x\":\"\xc3\x28\"");
	ck_assert_int_eq(verify_json(HDR, pl), FIN_E_UNAUTHORIZED);
	/* Nesting past the depth limit. */
	payload(pl, sizeof(pl), ",\"x\":[[[[[[[[1]]]]]]]]");
	ck_assert_int_eq(verify_json(HDR, pl), FIN_E_UNAUTHORIZED);
}
END_TEST

/* ------------------------------------------------------------------ */
/* claims                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_jwt_expired)
{
	struct fin_jwt_claims c = claims();

	/* Valid until exp, then 30 s of leeway. */
	ck_assert_int_eq(sign_verify(&c, c.exp - 1), FIN_OK);
	ck_assert_int_eq(sign_verify(&c, c.exp), FIN_OK);
	ck_assert_int_eq(sign_verify(&c, c.exp + 29), FIN_OK);
	ck_assert_int_eq(sign_verify(&c, c.exp + 30), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(sign_verify(&c, c.exp + 86400), FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_not_yet_valid_nbf)
{
	struct fin_jwt_claims c = claims();

	c.nbf = NOW + 100;
	ck_assert_int_eq(sign_verify(&c, NOW), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(sign_verify(&c, NOW + 69), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(sign_verify(&c, NOW + 70), FIN_OK);
	ck_assert_int_eq(sign_verify(&c, NOW + 100), FIN_OK);
}
END_TEST

START_TEST(test_jwt_iat_in_the_future)
{
	struct fin_jwt_claims c = claims();

	c.iat = NOW + 31;
	ck_assert_int_eq(sign_verify(&c, NOW), FIN_E_UNAUTHORIZED);
	c.iat = NOW + 30;
	ck_assert_int_eq(sign_verify(&c, NOW), FIN_OK);
	c.iat = NOW + 3600;
	c.exp = NOW + 7200;
	ck_assert_int_eq(sign_verify(&c, NOW), FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_wrong_iss)
{
	struct fin_jwt_claims c = claims();
	char		 tok[FIN_JWT_MAX + 1];
	char		 pl[1024];

	cfg.jwt_issuer = other;
	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)), FIN_OK);
	cfg.jwt_issuer = issuer;
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
	/* Missing, or not a string. */
	snprintf(pl, sizeof(pl), "{\"aud\":\"" AUDIENCE "\",\"sub\":\"" SUB
	    "\",\"sid\":\"" SID "\",\"jti\":\"" JTI "\",\"iat\":%lld,"
	    "\"exp\":%lld}", (long long)NOW, (long long)NOW + TTL);
	ck_assert_int_eq(verify_json(HDR, pl), FIN_E_UNAUTHORIZED);
	snprintf(pl, sizeof(pl), "{\"iss\":[\"" ISSUER "\"],\"aud\":\""
	    AUDIENCE "\",\"sub\":\"" SUB "\",\"sid\":\"" SID "\",\"jti\":\""
	    JTI "\",\"iat\":%lld,\"exp\":%lld}", (long long)NOW,
	    (long long)NOW + TTL);
	ck_assert_int_eq(verify_json(HDR, pl), FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_wrong_aud)
{
	struct fin_jwt_claims c = claims();
	char		 tok[FIN_JWT_MAX + 1];

	cfg.jwt_audience = other;
	ck_assert_int_eq(fin_jwt_sign(&cfg, &c, tok, sizeof(tok)), FIN_OK);
	cfg.jwt_audience = audience;
	ck_assert_int_eq(verify(tok), FIN_E_UNAUTHORIZED);
}
END_TEST

/* A payload whose aud member is the given JSON text. */
static enum fin_err
verify_aud(const char *aud)
{
	char	 pl[1024];

	snprintf(pl, sizeof(pl), "{\"iss\":\"" ISSUER "\",\"aud\":%s,"
	    "\"sub\":\"" SUB "\",\"sid\":\"" SID "\",\"jti\":\"" JTI "\","
	    "\"iat\":%lld,\"exp\":%lld}", aud, (long long)NOW,
	    (long long)NOW + TTL);
	return verify_json(HDR, pl);
}

START_TEST(test_jwt_aud_array_containing_audience)
{
	ck_assert_int_eq(verify_aud("\"" AUDIENCE "\""), FIN_OK);
	ck_assert_int_eq(verify_aud("[\"" AUDIENCE "\"]"), FIN_OK);
	ck_assert_int_eq(verify_aud("[\"billing\",\"" AUDIENCE "\"]"), FIN_OK);
	ck_assert_int_eq(verify_aud("[\"billing\",\"reports\"]"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_aud("[]"), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_aud("[[\"" AUDIENCE "\"]]"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_aud("{\"aud\":\"" AUDIENCE "\"}"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_aud("null"), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_aud("\"" AUDIENCE "x\""), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_aud("\"libfinance\""), FIN_E_UNAUTHORIZED);
}
END_TEST

/* A payload with the standard claims minus drop, plus extra. */
static enum fin_err
verify_without(const char *drop, const char *extra)
{
	struct json_object *o;
	char		 pl[1024], out[1200];
	size_t		 n;

	payload(pl, sizeof(pl), "");
	o = json_tokener_parse(pl);
	ck_assert_ptr_nonnull(o);
	json_object_object_del(o, drop);
	snprintf(pl, sizeof(pl), "%s", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	/* Drop the closing brace, add extra, close again. */
	n = strlen(pl);
	ck_assert(n > 0 && pl[n - 1] == '}');
	pl[n - 1] = '\0';
	snprintf(out, sizeof(out), "%s%s}", pl, extra == NULL ? "" : extra);
	return verify_json(HDR, out);
}

START_TEST(test_jwt_missing_exp_refused)
{
	ck_assert_int_eq(verify_without("nothing", NULL), FIN_OK);
	ck_assert_int_eq(verify_without("exp", NULL), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("exp", ",\"exp\":\"1700000900\""),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("exp", ",\"exp\":1700000900.5"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("exp", ",\"exp\":null"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("exp", ",\"exp\":-1"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("exp", ",\"exp\":99999999999999999999"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("iat", NULL), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("nbf", ",\"nbf\":\"0\""),
	    FIN_E_UNAUTHORIZED);
}
END_TEST

START_TEST(test_jwt_ids_must_be_uuids)
{
	ck_assert_int_eq(verify_without("sub", NULL), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("sid", NULL), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("jti", NULL), FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("sub", ",\"sub\":\"42\""),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("sub", ",\"sub\":42"),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("sid",
	    ",\"sid\":\"1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bedx\""),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("jti",
	    ",\"jti\":\"7c9e6679-7425-40de-944b-e07fc1f90ae\\u0000\""),
	    FIN_E_UNAUTHORIZED);
	ck_assert_int_eq(verify_without("jti",
	    ",\"jti\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\\u0000\""),
	    FIN_E_UNAUTHORIZED);
}
END_TEST

static Suite *
jwt_suite(void)
{
	Suite	*s = suite_create("jwt");
	TCase	*core = tcase_create("core");
	TCase	*attacks = tcase_create("attacks");
	TCase	*cl = tcase_create("claims");

	tcase_add_checked_fixture(core, setup, NULL);
	tcase_add_checked_fixture(attacks, setup, NULL);
	tcase_add_checked_fixture(cl, setup, NULL);

	tcase_add_test(core, test_jwt_rfc7515_a1_vector);
	tcase_add_test(core, test_jwt_round_trip);
	tcase_add_test(core, test_jwt_header_is_exact);
	tcase_add_test(core, test_jwt_sign_refuses_bad_input);
	tcase_add_test(core, test_jwt_verify_zeroes_claims_on_failure);

	tcase_add_test(attacks, test_jwt_alg_none);
	tcase_add_test(attacks, test_jwt_alg_hs512);
	tcase_add_test(attacks, test_jwt_alg_rs256);
	tcase_add_test(attacks, test_jwt_alg_pinned_exactly);
	tcase_add_test(attacks, test_jwt_payload_changed_one_byte);
	tcase_add_test(attacks, test_jwt_signature_truncated);
	tcase_add_test(attacks, test_jwt_signature_of_another_key);
	tcase_add_test(attacks, test_jwt_bad_base64url_in_each_segment);
	tcase_add_test(attacks, test_jwt_two_or_four_segments);
	tcase_add_test(attacks, test_jwt_over_long_token);
	tcase_add_test(attacks, test_jwt_non_object_header_or_payload);

	tcase_add_test(cl, test_jwt_expired);
	tcase_add_test(cl, test_jwt_not_yet_valid_nbf);
	tcase_add_test(cl, test_jwt_iat_in_the_future);
	tcase_add_test(cl, test_jwt_wrong_iss);
	tcase_add_test(cl, test_jwt_wrong_aud);
	tcase_add_test(cl, test_jwt_aud_array_containing_audience);
	tcase_add_test(cl, test_jwt_missing_exp_refused);
	tcase_add_test(cl, test_jwt_ids_must_be_uuids);

	suite_add_tcase(s, core);
	suite_add_tcase(s, attacks);
	suite_add_tcase(s, cl);
	return s;
}

FIN_CHECK_MAIN(jwt_suite)
