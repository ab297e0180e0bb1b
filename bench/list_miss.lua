-- GET /api/v1/transactions?limit=50, first page, a cache miss every time:
-- each request carries its own pair of dates that filter nothing out
-- (bench.always_miss in common.lua), so PostgreSQL answers the same index
-- scan and the page is then stored in Redis, as a real first read does.
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()
wrk.method = "GET"

bench.always_miss("/api/v1/transactions?limit=50&")
