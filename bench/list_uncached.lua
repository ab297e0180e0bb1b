-- GET /api/v1/transactions?limit=50, first page, never from the cache:
-- every request carries its own pair of dates that filter nothing out
-- (bench.uncached in common.lua).  The query is the same index scan, and
-- every request is a MISS (counted from X-Cache; a MISS also stores its
-- page in Redis, as a real first read does).
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()
wrk.method = "GET"

bench.uncached("/api/v1/transactions?limit=50&")

bench.counted = true
response = bench.count_response
