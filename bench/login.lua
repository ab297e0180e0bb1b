-- POST /api/v1/auth/login with the right password, round-robin over the
-- login users bench/run created (BENCH_LOGIN_EMAILS, comma-separated;
-- BENCH_LOGIN_PASSWORD).  The lockout counts only wrong passwords, so
-- none of them locks.  Each login is one argon2id verification (the
-- cost this measures against bench/hashrate) plus a session, a refresh
-- token and an audit event.
local bench = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.path = "/api/v1/auth/login"
wrk.headers["Content-Type"] = "application/json"

local bodies = {}
local password = os.getenv("BENCH_LOGIN_PASSWORD")
for email in string.gmatch(os.getenv("BENCH_LOGIN_EMAILS") or "", "[^,]+") do
	table.insert(bodies, string.format('{"email":"%s","password":"%s"}',
	    email, password))
end
local n = 0

function init(args)
	n = bench_thread_id or 0
end

function request()
	n = n + 1
	return wrk.format(nil, nil, nil, bodies[n % #bodies + 1])
end
