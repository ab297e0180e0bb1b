/* Access tokens: the verifier must refuse everything it did not sign. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin_jwt_claims c;
	char	*s = fuzz_string(data, size);

	/* A random input that verifies would be a forgery. */
	if (fin_jwt_verify(&fuzz_cfg, s, 1795515300, &c) == FIN_OK)
		abort();
	free(s);
	return 0;
}
