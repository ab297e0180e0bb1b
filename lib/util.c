/*
 * Small pure helpers: identifiers, time formatting, bounded integer
 * parsing, the HMAC.  Nothing here touches the network or allocates.
 */
#include "setup.h"

#include <string.h>
#include <time.h>

#include <sodium.h>
#include <uuid/uuid.h>

#include "internal.h"

#define REQUEST_ID_MAX	64

bool
fin_valid_request_id(const char *s)
{
	size_t	 i;

	if (s == NULL || s[0] == '\0')
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= REQUEST_ID_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

void
fin_uuid_v4(char out[37])
{
	uuid_t	 u;

	/*
	 * Every request takes one: libuuid's uuid_generate_random() would also
	 * make five more system calls (getpid, getuid, ...) to stir its
	 * fallback generator, where libsodium makes a single getrandom().
	 */
	randombytes_buf(u, sizeof(u));
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);	/* version 4 */
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);	/* RFC 4122 variant */
	uuid_unparse_lower(u, out);
}

bool
fin_valid_uuid(const char *s)
{
	size_t	 i;

	if (s == NULL || strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

void
fin_time_rfc3339(time_t t, char out[32])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		memcpy(out, "1970-01-01T00:00:00Z", sizeof("1970-01-01T00:00:00Z"));
}

int64_t
fin_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
fin_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
Fin_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * HMAC-SHA256 (RFC 2104) of data under key, the one MAC of tokens, cursors
 * and refresh-token hashes.  libsodium's, not OpenSSL 3's one-shot HMAC():
 * that one looks its algorithms up again on every call, which cost a list
 * request (a token and a cursor) about 8 % of a worker's CPU.  False for
 * an empty key, which would let anyone compute the MAC.
 */
bool
Fin_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, unsigned char out[FIN_HMAC_SHA256_LEN])
{
	crypto_auth_hmacsha256_state st;

	if (key == NULL || keylen == 0)
		return false;
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, data, len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
	return true;
}

bool
fin_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	uint64_t	 v = 0, limit;
	bool		 neg = false;
	size_t		 i = 0;

	if (s == NULL || s[0] == '\0')
		return false;
	if (s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (s[i] == '\0')
		return false;
	if (s[i] == '0' && s[i + 1] != '\0')
		return false;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; s[i] != '\0'; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = (unsigned)(s[i] - '0');
		if (v > (limit - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (neg) {
		int64_t r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;

		if (r < min || r > max)
			return false;
		*out = r;
	} else {
		if ((int64_t)v < min || (int64_t)v > max)
			return false;
		*out = (int64_t)v;
	}
	return true;
}
