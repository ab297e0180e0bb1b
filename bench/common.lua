-- bench/common.lua: what every wrk script of bench/run shares.  Loaded
-- with dofile() from the scripts; bench/run sets the environment:
--   BENCH_TOKEN     a Bearer access token (authenticated scripts)
-- Each script sets bench_path (and may override request/response).
--
-- done() prints one line that bench/run parses:
--   BENCH requests=N duration_us=N rps=F p50_us=N p99_us=N p999_us=N
--         max_us=N mean_us=F non2xx=N sockerr=N timeouts=N hit=N miss=N
-- (one line; latencies in microseconds, as wrk measures them).  hit and
-- miss count X-Cache headers where the script counts them (else 0), and
-- non2xx counts every status >= 300 where the script counts statuses,
-- else wrk's own count of statuses >= 400.

local bench = {}

bench.threads = {}
bench.counted = false	-- true when the script defines its own response()

local next_id = 0

-- Runs in the main Lua state once per thread, before the threads start.
function setup(thread)
	thread:set("bench_thread_id", next_id)
	next_id = next_id + 1
	table.insert(bench.threads, thread)
end

function bench.auth_headers()
	local token = os.getenv("BENCH_TOKEN")
	if token ~= nil and token ~= "" then
		wrk.headers["Authorization"] = "Bearer " .. token
	end
end

-- The counters a counting response() keeps per thread.
bench_hit, bench_miss, bench_bad = 0, 0, 0

-- response() for the list scripts: statuses and X-Cache.  Defining it
-- makes wrk hand every response's headers and body to Lua, a small cost
-- on the client, so only the scripts that need proof of HIT/MISS use it.
function bench.count_response(status, headers, body)
	if status >= 300 then
		bench_bad = bench_bad + 1
	end
	local xc = headers["X-Cache"] or headers["x-cache"]
	if xc == "HIT" then
		bench_hit = bench_hit + 1
	elseif xc == "MISS" then
		bench_miss = bench_miss + 1
	end
end

-- bench.uncached(prefix): init() and request() for a script whose every
-- request must miss the response cache, which keys pages on their
-- filters and cannot be turned off: each request carries its own pair of
-- dates that filter nothing out, `to=` far in the future (2100-01-01
-- onwards, one day further per request, each thread in its own range)
-- and `from=` far in the past (one day further each time `to=` has gone
-- through its range).  The server takes years 1900-2999 only.
--
-- bench/run gives each wrk invocation its own from= range: it starts
-- BENCH_DAY_OFFSET days after 1900-01-01, 1,500 days after the previous
-- invocation's, so that no run meets a page an earlier one cached (240
-- million requests a thread fit in a range; every from= stays before
-- 1990, long before the seeded data).
function bench.uncached(prefix)
	local span = 160000		-- to= days per thread: 2 threads end in 2976
	local to_base = 4102444800	-- 2100-01-01T00:00:00Z
	local from_base = -2208988800	-- 1900-01-01T00:00:00Z
	local n = 0

	function init(args)
		to_base = to_base + (bench_thread_id or 0) * span * 86400
		from_base = from_base + tonumber(os.getenv("BENCH_DAY_OFFSET") or "0") * 86400
	end

	function request()
		local to = os.date("!%Y-%m-%d", to_base + (n % span) * 86400)
		local from = os.date("!%Y-%m-%d", from_base + math.floor(n / span) * 86400)
		n = n + 1
		return wrk.format(nil, prefix .. "from=" .. from .. "&to=" .. to)
	end
end

function done(summary, latency, requests)
	local hit, miss, bad = 0, 0, 0
	for _, t in ipairs(bench.threads) do
		hit = hit + (tonumber(t:get("bench_hit")) or 0)
		miss = miss + (tonumber(t:get("bench_miss")) or 0)
		bad = bad + (tonumber(t:get("bench_bad")) or 0)
	end
	local e = summary.errors
	local non2xx = e.status
	if bench.counted then
		non2xx = bad
	end
	local secs = summary.duration / 1e6
	io.write(string.format("BENCH requests=%d duration_us=%d rps=%.1f "
	    .. "p50_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f "
	    .. "non2xx=%d sockerr=%d timeouts=%d hit=%d miss=%d\n",
	    summary.requests, summary.duration,
	    secs > 0 and summary.requests / secs or 0,
	    latency:percentile(50), latency:percentile(99),
	    latency:percentile(99.9), latency.max, latency.mean,
	    non2xx, e.connect + e.read + e.write, e.timeout, hit, miss))
end

return bench
