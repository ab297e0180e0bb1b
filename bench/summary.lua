-- GET /api/v1/transactions/summary over all of the user's transactions,
-- with the cache bypassed (Cache-Control: no-cache, no-store, as
-- list_uncached.lua): PostgreSQL sums every row of every request.
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()
bench.bypass_cache()
wrk.method = "GET"
wrk.path = "/api/v1/transactions/summary"
