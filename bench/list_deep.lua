-- GET /api/v1/transactions?limit=50&cursor=..., a page deep in the list
-- (bench/run passes the cursor of row 900 of 1,000, or of row 9,000,000
-- of 10,000,000 in the big case, in BENCH_CURSOR).  Pages after the
-- first are never cached: each request is a keyset index scan.
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()
wrk.method = "GET"
wrk.path = "/api/v1/transactions?limit=50&cursor=" .. os.getenv("BENCH_CURSOR")
