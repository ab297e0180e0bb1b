/* Pagination cursors and base64url: decode anything, accept only ours. */
#include "fuzz.h"
#include "internal.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		 payload[FIN_CURSOR_PAYLOAD_MAX + 1];
	unsigned char	 raw[4096];
	size_t		 n;
	char		*s = fuzz_string(data, size);

	if (Fin_cursor_decode(&fuzz_cfg, s, payload))
		abort();	/* forged */
	(void)fin_base64url_decode(s, size, raw, sizeof(raw), &n);
	free(s);
	return 0;
}
