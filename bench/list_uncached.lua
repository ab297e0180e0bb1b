-- GET /api/v1/transactions?limit=50, first page, never from the cache.
-- The response cache keys the first page on its filters (from, to,
-- category, q, deleted, limit) and cannot be turned off, so every request
-- carries its own pair of dates that filter nothing out: `to=` far in the
-- future (2100-01-01 onwards, one day further per request, each thread
-- in its own range) and `from=` far in the past (one day further each
-- time `to=` has gone through its range).  The query is the same index
-- scan, and every request is a MISS (counted from X-Cache; a MISS also
-- stores its page in Redis, as a real first read does).  The server
-- takes years 1900-2999 only.
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()
wrk.method = "GET"

local span = 160000		-- to= days per thread: 2 threads end in 2976
local to_base = 4102444800	-- 2100-01-01T00:00:00Z
local from_base = -2208988800	-- 1900-01-01T00:00:00Z
local n = 0

-- bench/run gives each wrk invocation its own from= range: it starts
-- BENCH_DAY_OFFSET days after 1900-01-01, 1,500 days after the previous
-- invocation's, so that no run meets a page an earlier one cached (240
-- million requests a thread fit in a range; every from= stays before
-- 1990, long before the seeded data).
function init(args)
	to_base = to_base + (bench_thread_id or 0) * span * 86400
	from_base = from_base + tonumber(os.getenv("BENCH_DAY_OFFSET") or "0") * 86400
end

function request()
	local to = os.date("!%Y-%m-%d", to_base + (n % span) * 86400)
	local from = os.date("!%Y-%m-%d", from_base + math.floor(n / span) * 86400)
	n = n + 1
	return wrk.format(nil, "/api/v1/transactions?limit=50&" .. "from=" .. from .. "&to=" .. to)
end

bench.counted = true
response = bench.count_response
