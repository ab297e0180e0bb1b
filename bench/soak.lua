-- The soak's mixed load (bench/run --soak): a fixed rotation of 16
-- requests that takes every kind of request a worker serves through its
-- code paths, so that memory a path fails to give back shows as growth:
--   /health; the first page cached (x5) and bypassed; a deep page; the
--   summary, bypassed; a new transaction (x2, as BENCH_POST_TOKEN's user,
--   so that the user under test keeps 1,000 rows and its cached page);
--   a page that misses and stores itself; a bad limit (400), an unknown
--   path (404), a bad token (401) and a bad body (400).
-- Unlike the measured runs it counts answers by status class in Lua: the
-- soak measures memory, not speed.  done() adds one line:
--   SOAK s2xx=N s4xx=N s5xx=N other=N expected4xx=N
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()

local api = "/api/v1"
local list = api .. "/transactions?limit=50"
local cursor = os.getenv("BENCH_CURSOR")
local post_token = os.getenv("BENCH_POST_TOKEN")

-- with(extra): wrk.headers plus EXTRA (a new table; wrk.headers stays).
local function with(extra)
	local h = {}
	for k, v in pairs(wrk.headers) do h[k] = v end
	for k, v in pairs(extra) do h[k] = v end
	return h
end

local bypass = with({ ["Cache-Control"] = "no-cache, no-store" })
local as_poster = with({ ["Authorization"] = "Bearer " .. post_token,
    ["Content-Type"] = "application/json" })
local forged = with({ ["Authorization"] = "Bearer not.a.token" })
local json = with({ ["Content-Type"] = "application/json" })
local today = os.date("!%Y-%m-%d")

local n = 0
local miss = 0
s2xx, s4xx, s5xx, other = 0, 0, 0, 0

local function post()
	return wrk.format("POST", api .. "/transactions", as_poster, string.format(
	    '{"amount":%d,"currency":"EUR","description":"soak %d",'
	    .. '"category":"food","occurred_on":"%s"}', -(100 + n % 100000), n, today))
end

-- Each its own request; the 4 answers meant to be 4xx come last.
local rotation = {
	function() return wrk.format("GET", api .. "/health") end,
	function() return wrk.format("GET", list) end,
	function() return wrk.format("GET", list, bypass) end,
	function() return wrk.format("GET", list) end,
	function() return wrk.format("GET", list .. "&cursor=" .. cursor) end,
	post,
	function() return wrk.format("GET", list) end,
	function() return wrk.format("GET", api .. "/transactions/summary", bypass) end,
	function() return wrk.format("GET", list) end,
	function()
		-- a page of its own: a miss that stores it (see bench.always_miss)
		miss = miss + 1
		return wrk.format("GET", list .. "&to=" .. os.date("!%Y-%m-%d",
		    4102444800 + ((bench_thread_id or 0) * 150000 + miss % 150000) * 86400))
	end,
	post,
	function() return wrk.format("GET", list) end,
	function() return wrk.format("GET", api .. "/transactions?limit=abc") end,
	function() return wrk.format("GET", api .. "/no-such-thing") end,
	function() return wrk.format("GET", list, forged) end,
	function() return wrk.format("POST", api .. "/transactions", json, '{"amount":') end,
}
local expected_4xx_per_round = 4

function request()
	n = n + 1
	return rotation[(n - 1) % #rotation + 1]()
end

function response(status, headers, body)
	if status >= 200 and status < 300 then s2xx = s2xx + 1
	elseif status >= 400 and status < 500 then s4xx = s4xx + 1
	elseif status >= 500 then s5xx = s5xx + 1
	else other = other + 1 end
end

local summary_line = done
function done(summary, latency, requests)
	summary_line(summary, latency, requests)
	local t = { s2xx = 0, s4xx = 0, s5xx = 0, other = 0 }
	for _, thread in ipairs(bench.threads) do
		for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
	end
	-- Requests sent, rounded down to whole rotations, give the 4xx that
	-- were asked for; a request cut off by the run's end may be one less.
	io.write(string.format("SOAK s2xx=%d s4xx=%d s5xx=%d other=%d expected4xx=%d\n",
	    t.s2xx, t.s4xx, t.s5xx, t.other,
	    math.floor(summary.requests / #rotation) * expected_4xx_per_round))
end
