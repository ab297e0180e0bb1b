/*
 * Header values checked before use: request id, Idempotency-Key,
 * Cache-Control and Pragma, UUIDs, dates and integers.  An accepted
 * request id must be safe to echo.
 */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s = fuzz_string(data, size);
	int64_t	 v;
	size_t	 i;

	if (fin_valid_request_id(s)) {
		if (strlen(s) > 64)
			abort();
		for (i = 0; s[i] != '\0'; i++)
			if (s[i] == '\r' || s[i] == '\n' || s[i] == '"')
				abort();
	}
	if (fin_idempotency_key_valid(s) && strlen(s) > 255)
		abort();
	if (fin_cache_directives(s, s) & ~(FIN_CACHE_NO_READ | FIN_CACHE_NO_STORE))
		abort();
	(void)fin_valid_uuid(s);
	(void)fin_valid_date(s);
	if (fin_parse_int64(s, -100, 100, &v) && (v < -100 || v > 100))
		abort();
	(void)fin_utf8_valid(s, size);
	free(s);
	return 0;
}
