-- POST /api/v1/transactions: a new expense per request (no
-- Idempotency-Key), each with its own amount.  Every one is an INSERT
-- plus its audit event in one SQL transaction, and a cache generation
-- bump in Redis.
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench.auth_headers()
wrk.method = "POST"
wrk.path = "/api/v1/transactions"
wrk.headers["Content-Type"] = "application/json"

local n = 0
local today = os.date("!%Y-%m-%d")

function init(args)
	n = (bench_thread_id or 0) * 1000000
end

function request()
	n = n + 1
	local body = string.format('{"amount":%d,"currency":"EUR",'
	    .. '"description":"bench coffee %d","category":"food",'
	    .. '"occurred_on":"%s"}', -(100 + n % 100000), n, today)
	return wrk.format(nil, nil, nil, body)
end
