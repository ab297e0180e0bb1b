/*
 * Opaque, tamper-evident pagination cursors.  The payload is the keyset
 * position (for example "2026-11-24|<created_at>|<id>"); a MAC keyed from
 * JWT_SECRET, with its own label so the key is never used twice for the
 * same purpose, makes every edited cursor an INVALID_CURSOR.
 */
#include "setup.h"

#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

#define CURSOR_MAC_LEN	16	/* 128 bits is plenty against forgery */

_Static_assert(CURSOR_MAC_LEN <= FIN_HMAC_SHA256_LEN, "a truncated HMAC");

static bool
mac(const struct fin_config *cfg, const char *payload, size_t n,
    unsigned char out[FIN_HMAC_SHA256_LEN])
{
	static const char label[] = "libfinance cursor v1\n";
	unsigned char	 buf[sizeof(label) + FIN_CURSOR_PAYLOAD_MAX];

	memcpy(buf, label, sizeof(label) - 1);
	memcpy(buf + sizeof(label) - 1, payload, n);
	return Fin_hmac_sha256(cfg->jwt_secret, strlen(cfg->jwt_secret), buf,
	    sizeof(label) - 1 + n, out);
}

bool
Fin_cursor_encode(const struct fin_config *cfg, const char *payload,
    char out[FIN_CURSOR_MAX])
{
	unsigned char	 m[FIN_HMAC_SHA256_LEN];
	size_t		 n = strlen(payload), w;

	if (n == 0 || n > FIN_CURSOR_PAYLOAD_MAX || !mac(cfg, payload, n, m))
		return false;
	w = fin_base64url_encode((const unsigned char *)payload, n, out,
	    FIN_CURSOR_MAX);
	if (w == 0 || w + 2 >= FIN_CURSOR_MAX)
		return false;
	out[w] = '.';
	return fin_base64url_encode(m, CURSOR_MAC_LEN, out + w + 1,
	    FIN_CURSOR_MAX - w - 1) != 0;
}

bool
Fin_cursor_decode(const struct fin_config *cfg, const char *cursor,
    char payload[FIN_CURSOR_PAYLOAD_MAX + 1])
{
	unsigned char	 want[FIN_HMAC_SHA256_LEN], got[CURSOR_MAC_LEN + 4];
	const char	*dot;
	size_t		 n, glen, len;

	len = strnlen(cursor, FIN_CURSOR_MAX);
	if (len == 0 || len >= FIN_CURSOR_MAX)
		return false;
	dot = memchr(cursor, '.', len);
	if (dot == NULL)
		return false;
	if (!fin_base64url_decode(cursor, (size_t)(dot - cursor),
	    (unsigned char *)payload, FIN_CURSOR_PAYLOAD_MAX, &n) || n == 0)
		return false;
	payload[n] = '\0';
	if (strlen(payload) != n)
		return false;
	if (!fin_base64url_decode(dot + 1, len - (size_t)(dot - cursor) - 1,
	    got, sizeof(got), &glen) || glen != CURSOR_MAC_LEN)
		return false;
	if (!mac(cfg, payload, n, want))
		return false;
	return CRYPTO_memcmp(want, got, CURSOR_MAC_LEN) == 0;
}
