-- bench/common.lua: what every wrk script of bench/run shares.  Loaded
-- with dofile() from the scripts; bench/run sets the environment:
--   BENCH_TOKEN     a Bearer access token (authenticated scripts)
-- Each script sets bench_path (and may override request/response).
--
-- done() prints one line that bench/run parses:
--   BENCH requests=N duration_us=N rps=F p50_us=N p99_us=N p999_us=N
--         max_us=N mean_us=F non2xx=N sockerr=N timeouts=N
-- (one line; latencies in microseconds, as wrk measures them; non2xx is
-- wrk's own count of statuses >= 400).  No script defines response():
-- that would make wrk hand every body to Lua, client CPU taken from the
-- server on a shared machine.  How the cache served each run comes from
-- the server's own counters (bench/run reads /metrics around it).

local bench = {}

bench.threads = {}

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

-- The request's own Cache-Control (docs/api-notes.md): PostgreSQL answers
-- every request and nothing is stored (X-Cache: BYPASS).
function bench.bypass_cache()
	wrk.headers["Cache-Control"] = "no-cache, no-store"
end

-- bench.always_miss(prefix): init() and request() for a script whose
-- every request must miss the response cache and store its page, as a
-- first read does.  The cache keys pages on their query string, so each
-- request carries its own pair of dates that filter nothing out, `to=` far in the future (2100-01-01
-- onwards, one day further per request, each thread in its own range)
-- and `from=` far in the past (one day further each time `to=` has gone
-- through its range).  The server takes years 1900-2999 only.
--
-- bench/run gives each wrk invocation its own from= range: it starts
-- BENCH_DAY_OFFSET days after 1900-01-01, 1,500 days after the previous
-- invocation's, so that no run meets a page an earlier one cached (240
-- million requests a thread fit in a range; every from= stays before
-- 1990, long before the seeded data).
function bench.always_miss(prefix)
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
	local e = summary.errors
	local secs = summary.duration / 1e6
	io.write(string.format("BENCH requests=%d duration_us=%d rps=%.1f "
	    .. "p50_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f "
	    .. "non2xx=%d sockerr=%d timeouts=%d\n",
	    summary.requests, summary.duration,
	    secs > 0 and summary.requests / secs or 0,
	    latency:percentile(50), latency:percentile(99),
	    latency:percentile(99.9), latency.max, latency.mean,
	    e.status, e.connect + e.read + e.write, e.timeout))
end

return bench
