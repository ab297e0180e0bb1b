-- GET /api/v1/health: no dependency touched, no rate limit: the ceiling
-- of nginx + FastCGI + the worker's pipeline on this machine.
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/api/v1/health"
