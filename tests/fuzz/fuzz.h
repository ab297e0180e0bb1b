/*
 * Shared by the libFuzzer targets: a config with test secrets and an
 * arena reset after each input, as a worker does after each request.
 */
#ifndef FIN_FUZZ_H
#define FIN_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "finance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fin_config fuzz_cfg = {
	.jwt_secret = "fuzz-jwt-secret-0123456789abcdef0123",
	.refresh_token_secret = "fuzz-refresh-secret-0123456789abcdef",
	.jwt_issuer = "libfinance",
	.jwt_audience = "libfinance-api",
	.access_token_ttl = 900,
};

/* The input as a C string, as the CGI layer hands strings to parsers. */
static char *
fuzz_string(const uint8_t *data, size_t size)
{
	char	*s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif /* FIN_FUZZ_H */
