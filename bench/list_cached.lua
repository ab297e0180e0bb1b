-- GET /api/v1/transactions?limit=50, the same first page every time:
-- after the first request, every answer comes from the Redis response
-- cache (X-Cache: HIT, which bench/run counts from the server's metrics).
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()
wrk.method = "GET"
wrk.path = "/api/v1/transactions?limit=50"
