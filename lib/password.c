/*
 * Passwords: argon2id hashes through libsodium, and the policy a new
 * password must meet.
 *
 * The policy follows NIST SP 800-63B §5.1.1.2: a length of 8 to 128
 * characters, counted in Unicode code points, no composition rules, and
 * refusal of passwords that are on a list of commonly used ones.  That list
 * is lib/common-passwords.txt (its source and licence are at its top),
 * compiled into lib/common_passwords.h so that the library reads no file
 * at run time.
 */
#include "setup.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"
#include "common_passwords.h"

_Static_assert(FIN_PASSWORD_HASH_MAX >= crypto_pwhash_STRBYTES,
    "FIN_PASSWORD_HASH_MAX cannot hold a libsodium password hash");

/* What crypto_pwhash_str() writes; anything else in the store is corrupt. */
#define HASH_PREFIX	"$argon2id$"

/* Longest password in bytes: FIN_PASSWORD_MAX code points of 4 bytes each. */
#define PASSWORD_BYTES_MAX	(FIN_PASSWORD_MAX * 4)

static bool
limits(const struct fin_config *cfg, unsigned long long *ops, size_t *mem)
{
	if (cfg == NULL ||
	    cfg->pwhash_opslimit < crypto_pwhash_OPSLIMIT_MIN ||
	    (uint64_t)cfg->pwhash_opslimit > crypto_pwhash_OPSLIMIT_MAX ||
	    cfg->pwhash_memlimit < crypto_pwhash_MEMLIMIT_MIN ||
	    (uint64_t)cfg->pwhash_memlimit > crypto_pwhash_MEMLIMIT_MAX)
		return false;
	*ops = (unsigned long long)cfg->pwhash_opslimit;
	*mem = (size_t)cfg->pwhash_memlimit;
	return true;
}

/* ------------------------------------------------------------------ */
/* Hashing and verification                                            */
/* ------------------------------------------------------------------ */

enum fin_err
fin_password_hash(const struct fin_config *cfg, const char *password,
    char out[FIN_PASSWORD_HASH_MAX])
{
	unsigned long long	 ops;
	size_t			 mem;

	out[0] = '\0';
	if (password == NULL || !limits(cfg, &ops, &mem))
		return FIN_E_INTERNAL_ERROR;
	/* Idempotent and cheap after the first call; picks the CPU's code. */
	if (sodium_init() < 0)
		return FIN_E_INTERNAL_ERROR;
	/* Writes "$argon2id$v=19$m=...,t=...,p=1$salt$hash" and a NUL. */
	if (crypto_pwhash_str(out, password, strlen(password), ops, mem) != 0) {
		out[0] = '\0';
		fin_log(FIN_LOG_ERROR, "pwhash_failed", "could not hash a "
		    "password with memlimit %zu: out of memory", mem);
		return FIN_E_INTERNAL_ERROR;
	}
	return FIN_OK;
}

enum fin_err
fin_password_verify(const struct fin_config *cfg, const char *hash,
    const char *password, bool *ok, bool *needs_rehash)
{
	unsigned long long	 ops;
	size_t			 mem;
	int			 r;

	*ok = false;
	*needs_rehash = false;
	if (password == NULL || !limits(cfg, &ops, &mem))
		return FIN_E_INTERNAL_ERROR;
	if (hash == NULL ||
	    strnlen(hash, crypto_pwhash_STRBYTES) == crypto_pwhash_STRBYTES ||
	    strncmp(hash, HASH_PREFIX, sizeof(HASH_PREFIX) - 1) != 0) {
		/* Never log the hash itself. */
		fin_log(FIN_LOG_ERROR, "pwhash_corrupt", "could not verify a "
		    "password: the stored hash is not an argon2id string");
		return FIN_E_INTERNAL_ERROR;
	}
	if (sodium_init() < 0)
		return FIN_E_INTERNAL_ERROR;
	/*
	 * -1 means a wrong password, unless the memory for the hash could
	 * not be had: libsodium maps it with mmap(), which sets ENOMEM.  An
	 * outage must not count as a failed login towards a lockout.
	 */
	errno = 0;
	r = crypto_pwhash_str_verify(hash, password, strlen(password));
	if (r != 0) {
		if (errno == ENOMEM) {
			fin_log(FIN_LOG_ERROR, "pwhash_failed", "could not "
			    "verify a password: out of memory");
			return FIN_E_INTERNAL_ERROR;
		}
		return FIN_OK;
	}
	*ok = true;
	/* 1: other limits or algorithm; -1: unparsable.  Both: hash anew. */
	*needs_rehash = crypto_pwhash_str_needs_rehash(hash, ops, mem) != 0;
	return FIN_OK;
}

/*
 * The dummy hash is the only process-wide state here besides the config:
 * it is derived from the config's limits, costs one hash per process (or
 * one more if the limits change), and holds no secret of anyone's, since
 * its password is random and never kept.
 */
static struct {
	pthread_mutex_t	 lock;
	bool		 ready;
	int64_t		 ops, mem;
	char		 hash[crypto_pwhash_STRBYTES];
} dummy = { .lock = PTHREAD_MUTEX_INITIALIZER };

void
fin_password_verify_dummy(const struct fin_config *cfg, const char *password)
{
	char			 hash[crypto_pwhash_STRBYTES];
	unsigned char		 rnd[32];
	char			 pw[sizeof(rnd) * 2 + 1];
	unsigned long long	 ops;
	size_t			 mem;

	if (password == NULL || !limits(cfg, &ops, &mem) || sodium_init() < 0)
		return;
	pthread_mutex_lock(&dummy.lock);
	if (!dummy.ready || dummy.ops != cfg->pwhash_opslimit ||
	    dummy.mem != cfg->pwhash_memlimit) {
		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2hex(pw, sizeof(pw), rnd, sizeof(rnd));
		dummy.ready = crypto_pwhash_str(dummy.hash, pw, strlen(pw),
		    ops, mem) == 0;
		dummy.ops = cfg->pwhash_opslimit;
		dummy.mem = cfg->pwhash_memlimit;
		sodium_memzero(pw, sizeof(pw));
		sodium_memzero(rnd, sizeof(rnd));
	}
	if (!dummy.ready) {
		pthread_mutex_unlock(&dummy.lock);
		return;
	}
	memcpy(hash, dummy.hash, sizeof(hash));
	pthread_mutex_unlock(&dummy.lock);

	/*
	 * The work is the point and the answer is always no; the test only
	 * consumes the result, which libsodium marks warn_unused_result.
	 */
	if (crypto_pwhash_str_verify(hash, password, strlen(password)) == 0)
		return;
}

/* ------------------------------------------------------------------ */
/* Policy                                                              */
/* ------------------------------------------------------------------ */

/*
 * Counts the code points of the NUL-terminated s, len bytes long, and
 * checks that it is well-formed UTF-8 (RFC 3629): no overlong forms, no
 * surrogates, nothing above U+10FFFF.
 */
static bool
utf8_count(const unsigned char *s, size_t len, size_t *count)
{
	size_t	 i = 0, n = 0, k, need;
	unsigned char lo, hi;

	while (i < len) {
		unsigned char c = s[i];

		lo = 0x80;
		hi = 0xBF;
		if (c < 0x80)
			need = 0;
		else if (c >= 0xC2 && c <= 0xDF)
			need = 1;
		else if (c == 0xE0) {
			need = 2;
			lo = 0xA0;	/* overlong below U+0800 */
		} else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
			need = 2;
		else if (c == 0xED) {
			need = 2;
			hi = 0x9F;	/* U+D800..U+DFFF are surrogates */
		} else if (c == 0xF0) {
			need = 3;
			lo = 0x90;	/* overlong below U+10000 */
		} else if (c >= 0xF1 && c <= 0xF3)
			need = 3;
		else if (c == 0xF4) {
			need = 3;
			hi = 0x8F;	/* above U+10FFFF */
		} else
			return false;
		if (need > len - i - 1)
			return false;
		for (k = 1; k <= need; k++) {
			unsigned char b = s[i + k];

			if (k == 1 ? (b < lo || b > hi) :
			    (b < 0x80 || b > 0xBF))
				return false;
		}
		i += need + 1;
		n++;
	}
	*count = n;
	return true;
}

static int
cmp_entry(const void *key, const void *entry)
{
	return strcmp(key, *(const char *const *)entry);
}

/*
 * The list is matched without regard to ASCII case.  Its source stores
 * every entry lower-cased (the counts behind it were taken case-folded),
 * and cracking tools try the capitalised and upper-cased forms of every
 * dictionary word first, so "Password" or "LETMEIN" is no stronger than
 * the entry itself.  Only ASCII is folded: the list is ASCII, and a
 * password with other letters cannot be on it.
 */
static bool
is_common(const char *password, size_t len)
{
	char	 low[PASSWORD_BYTES_MAX + 1];
	size_t	 i;
	bool	 found;

	if (len >= sizeof(low))
		return false;
	for (i = 0; i < len; i++) {
		char c = password[i];

		low[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	low[len] = '\0';
	found = bsearch(low, common_passwords,
	    sizeof(common_passwords) / sizeof(common_passwords[0]),
	    sizeof(common_passwords[0]), cmp_entry) != NULL;
	sodium_memzero(low, sizeof(low));
	return found;
}

enum fin_err
fin_password_check_policy(const char *password, const char **why)
{
	size_t	 len, chars;

	*why = NULL;
	if (password == NULL) {
		*why = "is required";
		return FIN_E_VALIDATION_ERROR;
	}
	/* Past 128 four-byte characters it is too long, whatever it holds. */
	len = strnlen(password, PASSWORD_BYTES_MAX + 1);
	if (len > PASSWORD_BYTES_MAX) {
		*why = "must be 8 to 128 characters";
		return FIN_E_VALIDATION_ERROR;
	}
	if (!utf8_count((const unsigned char *)password, len, &chars)) {
		*why = "must be valid UTF-8";
		return FIN_E_VALIDATION_ERROR;
	}
	if (chars < FIN_PASSWORD_MIN || chars > FIN_PASSWORD_MAX) {
		*why = "must be 8 to 128 characters";
		return FIN_E_VALIDATION_ERROR;
	}
	if (is_common(password, len)) {
		*why = "is too common";
		return FIN_E_WEAK_PASSWORD;
	}
	return FIN_OK;
}
