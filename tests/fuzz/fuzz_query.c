/* Query strings and paths: the decoder and the router. */
#include "fuzz.h"
#include "app.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fin_arena *a;
	struct query_param q[MAX_QUERY_PARAMS];
	const struct route *r;
	const char	*params[MAX_PARAMS];
	bool		 allow[M__MAX];
	size_t		 n, np;
	const char	*field;
	char		*s = fuzz_string(data, size);

	if (a == NULL)
		a = fin_arena_new(16 * 1024 * 1024);
	if (query_parse(a, s, q, &n, &field) == NULL && n > MAX_QUERY_PARAMS)
		abort();
	if (field == NULL || !fin_utf8_valid(field, strlen(field)))
		abort();
	if (router_match(routes, nroutes, M_GET, s, false, &r, params, &np, a,
	    allow) == ROUTE_FOUND && (r == NULL || np > MAX_PARAMS))
		abort();
	(void)router_match(routes, nroutes, M_POST, s, true, &r, params, &np, a,
	    allow);
	fin_arena_reset(a);
	free(s);
	return 0;
}
