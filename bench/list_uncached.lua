-- GET /api/v1/transactions?limit=50, first page, with the cache bypassed:
-- the request's Cache-Control: no-cache, no-store makes PostgreSQL answer
-- every request and keeps nothing in Redis (X-Cache: BYPASS, which
-- bench/run counts from the server's metrics).
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()
bench.bypass_cache()
wrk.method = "GET"
wrk.path = "/api/v1/transactions?limit=50"
