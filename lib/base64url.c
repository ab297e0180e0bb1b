/*
 * base64url without padding (RFC 4648 §5), the encoding of every JWT
 * segment (RFC 7515 §2).  libsodium does the work; this file adds the size
 * checks that keep sodium_bin2base64() from aborting on a short buffer, and
 * pins the decoder to the strict form: no '=', no white space, nothing
 * outside the alphabet, and zero trailing bits, so that every byte string
 * has exactly one encoding and a token cannot be altered without changing
 * the text that was signed.  tests/unit/check_base64url.c holds libsodium to
 * each of these.
 */
#include "setup.h"

#include <string.h>

#include <sodium.h>

#include "internal.h"

#define VARIANT	sodium_base64_VARIANT_URLSAFE_NO_PADDING

/*
 * Bytes needed to encode len bytes, NUL included, or 0 when that does not
 * fit in a size_t.  Same value as sodium_base64_ENCODED_LEN(), computed
 * without its overflow.
 */
static size_t
encoded_size(size_t len)
{
	if (len / 3 > (SIZE_MAX - 4) / 4)
		return 0;
	return len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1) + 1;
}

size_t
fin_base64url_encode(const unsigned char *in, size_t len, char *out,
    size_t outsz)
{
	size_t	 need;

	need = encoded_size(len);
	if (out == NULL || need == 0 || outsz < need) {
		if (out != NULL && outsz > 0)
			out[0] = '\0';
		return 0;
	}
	if (len == 0) {
		out[0] = '\0';
		return 0;
	}
	/* Never reached with a short buffer: libsodium aborts on one. */
	sodium_bin2base64(out, outsz, in, len, VARIANT);
	return need - 1;
}

bool
fin_base64url_decode(const char *in, size_t len, unsigned char *out,
    size_t outsz, size_t *outlen)
{
	size_t	 n = 0;

	*outlen = 0;
	if (in == NULL || out == NULL)
		return false;
	if (len == 0)
		return true;
	/*
	 * ignore NULL: no character is skipped.  b64_end NULL: libsodium
	 * fails unless the whole input was consumed, so a '=' or any other
	 * stray byte anywhere refuses the input.  It also refuses a length
	 * of 1 mod 4 and non-zero trailing bits, and output past outsz.
	 */
	if (sodium_base642bin(out, outsz, in, len, NULL, &n, NULL,
	    VARIANT) != 0)
		return false;
	*outlen = n;
	return true;
}
