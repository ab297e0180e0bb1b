-- GET /api/v1/transactions/summary over all of the user's transactions,
-- never from the cache: the summary is cached like the first list page,
-- so every request carries its own far-past `from=` and far-future `to=`
-- (bench.uncached in common.lua), which filter nothing out.
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()
wrk.method = "GET"

bench.uncached("/api/v1/transactions/summary?")

bench.counted = true
response = bench.count_response
