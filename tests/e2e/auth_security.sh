#!/usr/bin/env bash
#
# tests/e2e/auth_security.sh: the security properties of auth and sessions
# that a case file cannot express -- races, restarts, timing, logs and
# forged tokens -- checked through nginx against real PostgreSQL and Redis
# (API.md: Auth, Sessions, "Where state lives").  Starts its own stack with
# tests/harness/stack, always stops it, prints one "ok N - ..." or
# "not ok N - ..." line per check and exits 1 if any failed.
#
#   (a) 20 wrong logins from 4 parallel clients: exactly 5 are let through
#       to the password check (401), 15 are 423; PostgreSQL counted 5; and
#       no login waits on another one's lock meanwhile (API.md: a lockout
#       never holds a worker)
#   (b) a lockout holds across a SIGKILL of every worker
#   (c) it ends by itself after LOCKOUT_SECONDS; a success resets the count
#   (d) unknown email and wrong password cost the same time (medians
#       within 20%)
#   (e) two concurrent refreshes with one refresh token: exactly one 200
#   (f) a revoked session stays revoked while Redis is down, after it comes
#       back (also restored from a snapshot of before the revocation), and
#       when Redis stalled during the revocation; live sessions work
#       meanwhile
#   (g) no password or token used here appears in any log
#   (h) forged access tokens (alg none, HS512 with the right key, edited
#       signature or claims, expired) are 401
#   (i) logins still in flight are not failures: 4 wrong logins, then 3
#       concurrent logins with the right password are all 200; one that
#       finds the last place held by a check in flight waits for it and
#       gets 200 or, if that check was the 5th failure, 423
#   (j) a wrong password on POST /auth/password or DELETE /auth/me counts
#       toward the lockout like a failed login (audited as login_failure);
#       locked, they answer 423 with Retry-After; the right one resets
#   (k) a login with the old password that commits just after a password
#       change checked it does not outlive the change: its session is
#       revoked with the others (a lock on audit_events holds the login
#       between its check and its commit while the change runs)
#   (l) with Redis down, revoking many sessions waits for Redis once, not
#       once per session (the worker and the SQL transaction are held
#       meanwhile), and the revoked sessions are 401
#
# The stack gets LOCKOUT_SECONDS=15 (AUTH_LOCKOUT_SECONDS overrides) so
# that (c) waits seconds, not 30 minutes, rate limits high enough not to
# interfere (they are not under test here) and 4 workers.  Every loop is
# bounded in count and time; every address is 127.0.0.1.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/auth_security.sh
#
# shellcheck disable=SC2016  # check's eval strings expand when they run
FIN_PROG=auth_security
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"
e2e_need curl python3 redis-cli

lockout_seconds=${AUTH_LOCKOUT_SECONDS:-15}
export LOCKOUT_THRESHOLD=5
export LOCKOUT_SECONDS=$lockout_seconds
export RATE_LIMIT_IP_PER_MIN=1000000
export RATE_LIMIT_USER_PER_MIN=1000000
export RATE_LIMIT_SIGNUP_PER_HOUR=1000000
export RATE_LIMIT_LOGIN_IP_PER_15MIN=1000000
export RATE_LIMIT_LOGIN_EMAIL_PER_15MIN=1000000
# Real concurrency for the races: more workers than one.
export FIN_WORKERS=4
# argon2id with 16 MiB instead of 64: the same code paths, a quarter of the
# memory and time per login (4 workers, and make check runs stacks side by
# side).  The timing check (d) holds whatever the cost.
export PWHASH_MEMLIMIT=${PWHASH_MEMLIMIT:-16777216}

e2e_tempdir authsec
# A stack that does not stop cleanly (a worker stuck, say) fails the test.
e2e_stop_must_succeed=1
tag=$(date +%s)-$$-$RANDOM

# ------------------------------------------------------------ reporting

# check DESCRIPTION COMMAND...: ok when COMMAND succeeds; on failure the
# last response is shown.  Checks that are not about the last response
# use common.sh's verify.
check() {
	local desc=$1
	shift
	if "$@"; then
		ok "$desc"
	else
		not_ok "$desc" "last status: $code" \
		    "last body: $(head -c 300 "$dir/body" 2>/dev/null)"
	fi
}

# ------------------------------------------------------------- secrets

# Every password and token this script uses, for (g).
secrets_file=$dir/secrets
: >"$secrets_file"
secret() {
	[ -z "$1" ] || printf '%s\n' "$1" >>"$secrets_file"
}

# harvest FILE: the tokens in a response body are secrets too.
harvest() {
	[ -s "$1" ] || return 0
	grep -o '"\(access\|refresh\)_token" *: *"[^"]*"' "$1" 2>/dev/null |
	    sed 's/.*: *"\(.*\)"$/\1/' >>"$secrets_file" || true
}

# ----------------------------------------------------------------- http

code=000
# req METHOD PATH [CURL-ARG...]: one request through nginx to /api/v1PATH;
# sets code, leaves the body in $dir/body and the headers in $dir/headers.
req() {
	local method=$1 path=$2
	shift 2
	: >"$dir/body"
	: >"$dir/headers"
	code=$(curl -s -o "$dir/body" -D "$dir/headers" -w '%{http_code}' \
	    --max-time 20 -X "$method" "$@" "$FIN_BASE_URL/api/v1$path" \
	    2>/dev/null) || code=000
	harvest "$dir/body"
}

# post PATH JSON [CURL-ARG...]
post() {
	local path=$1 json=$2
	shift 2
	req POST "$path" -H 'Content-Type: application/json' --data-binary "$json" "$@"
}

# get_as TOKEN PATH: a GET with the Bearer token.
get_as() {
	req GET "$2" -H "Authorization: Bearer $1"
}

# jget PATH [FILE]: a value of the last JSON body, as text ("" if absent):
# PATH is a dotted path with numeric array indexes (user.id, data.0.id).
jget() {
	python3 - "$1" "${2:-$dir/body}" <<'EOF'
import json, sys
try:
    v = json.load(open(sys.argv[2], encoding="utf-8"))
    for k in sys.argv[1].split("."):
        v = v[int(k)] if isinstance(v, list) else v[k]
except Exception:
    v = ""
if isinstance(v, bool):
    v = "true" if v else "false"
elif v is None:
    v = "null"
print(v if isinstance(v, str) else json.dumps(v))
EOF
}

header() {
	grep -i -m 1 "^$1:" "$dir/headers" | cut -d: -f2- |
	    sed -e 's/^ *//' -e 's/\r$//'
}

# signup EMAIL PASSWORD: 201 or the check fails.
signup() {
	secret "$2"
	post /auth/signup "{\"email\": \"$1\", \"name\": \"Sec\", \"password\": \"$2\"}"
	[ "$code" = 201 ]
}

# login EMAIL PASSWORD: sets code, at, rt, uid.
at=
rt=
uid=
login() {
	secret "$2"
	post /auth/login "{\"email\": \"$1\", \"password\": \"$2\"}"
	at=
	rt=
	uid=
	if [ "$code" = 200 ]; then
		at=$(jget access_token)
		rt=$(jget refresh_token)
		uid=$(jget user.id)
	fi
}

# login_code EMAIL PASSWORD: prints only the status (for loops).
login_code() {
	local c
	c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST \
	    -H 'Content-Type: application/json' \
	    --data-binary "{\"email\": \"$1\", \"password\": \"$2\"}" \
	    "$FIN_BASE_URL/api/v1/auth/login" 2>/dev/null) || c=000
	echo "$c"
}

status_is() {
	req GET "$2"
	[ "$code" = "$1" ]
}

# ------------------------------------------------------------ databases

psql_bin=
# sql QUERY [NAME=VALUE...]: one row, fields separated by '|'.  Values are
# psql variables, used in the query as :'NAME' (quoted by psql).
sql() {
	local q=$1 v args=()
	shift
	for v in "$@"; do
		args+=(-v "$v")
	done
	# A failure shows up as its message in the row the caller compares.
	printf '%s\n' "$q" | "$psql_bin" "$DATABASE_URL" -X -q -t -A \
	    -v ON_ERROR_STOP=1 "${args[@]}" 2>&1 || true
}

rcli() {
	redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

# ---------------------------------------------------------- base64url, JWT

b64u_enc() {
	base64 -w 0 | tr '+/' '-_' | tr -d '='
}

b64u_dec() {
	local s
	s=$(tr '_-' '/+' <<<"$1")
	case $((${#s} % 4)) in
	2) s+="==" ;;
	3) s+="=" ;;
	esac
	base64 -d <<<"$s"
}

# hmac_b64u sha256|sha512 KEY DATA: the base64url HMAC, by openssl when it
# is there, else by python3.
hmac_b64u() {
	if command -v openssl >/dev/null 2>&1; then
		printf '%s' "$3" | openssl dgst "-$1" -hmac "$2" -binary | b64u_enc
	else
		python3 -c 'import sys, hmac, hashlib, base64
d = hmac.new(sys.argv[2].encode(), sys.argv[3].encode(), getattr(hashlib, sys.argv[1])).digest()
print(base64.urlsafe_b64encode(d).decode().rstrip("="), end="")' "$1" "$2" "$3"
	fi
}

# ---------------------------------------------------------------- start

if ! bash "$stack" start "$dir" >/dev/null; then
	echo "not ok 1 - the stack starts"
	exit 1
fi
# shellcheck disable=SC1091
. "$dir/env"
psql_bin=$(fin_pg_bindir)/psql
ok "the stack starts (nginx on $FIN_BASE_URL, $FIN_WORKERS workers, LOCKOUT_SECONDS=$lockout_seconds)"

# ------------------------------- (a) parallel wrong logins lock exactly

email=par-$tag@example.com
pw="pw-a-$tag correct horse"
check "(a) signup $email" signup "$email" "$pw"
mkdir -p "$dir/par"
# Meanwhile PostgreSQL is asked, every 5 ms for about 2 s, how many of its
# sessions wait for a lock: a login that waits for another login's row
# lock holds its worker for as long as that one hashes a password.
"$psql_bin" "$DATABASE_URL" -X -q -t -A >/dev/null 2>"$dir/par.locks" <<'EOF' &
DO $$
DECLARE
	w int := 0;
	c int;
BEGIN
	FOR i IN 1..400 LOOP
		PERFORM pg_stat_clear_snapshot();
		SELECT count(*) INTO c FROM pg_stat_activity
		    WHERE datname = current_database() AND wait_event_type = 'Lock';
		IF c > 0 THEN
			w := w + 1;
		END IF;
		PERFORM pg_sleep(0.005);
	END LOOP;
	RAISE NOTICE 'lock_wait_samples=%', w;
END $$;
EOF
sampler=$!
bg+=("$sampler")
sleep 0.3
for c in 1 2 3 4; do
	(
		for i in 1 2 3 4 5; do
			login_code "$email" "wrong-a-$tag-$c-$i" >>"$dir/par/$c"
		done
	) &
	bg+=($!)
	for i in 1 2 3 4 5; do
		secret "wrong-a-$tag-$c-$i"
	done
done
# 4 clients x 5 requests of at most 20 s each: give them 60 s in all.
late=
for p in "${bg[@]}"; do
	[ "$p" = "$sampler" ] && continue
	fin_wait_gone "$p" 60 || late+=" $p"
done
fin_wait_gone "$sampler" 30 || true
bg=()
codes=$(cat "$dir"/par/* 2>/dev/null | sort | uniq -c | awk '{ printf "%s x %s, ", $1, $2 }')
n401=$(cat "$dir"/par/* | grep -c '^401$' || true)
n423=$(cat "$dir"/par/* | grep -c '^423$' || true)
if [ -z "$late" ] && [ "$n401" = 5 ] && [ "$n423" = 15 ]; then
	ok "(a) 20 parallel wrong logins from 4 clients: exactly 5 x 401 and 15 x 423"
else
	not_ok "(a) 20 parallel wrong logins from 4 clients: exactly 5 x 401 and 15 x 423" \
	    "got: ${codes%, }${late:+ (clients still running: $late)}"
fi
row=$(sql "SELECT failed_logins, locked_until > now() FROM users WHERE email = :'e'" "e=$email")
verify "(a) PostgreSQL counted exactly 5 failures and holds the lock (failed_logins|locked: $row)" \
    [ "$row" = "5|t" ]
row=$(sql "SELECT count(*) FILTER (WHERE a.action = 'login_failure'),
    count(*) FILTER (WHERE a.action = 'account_locked')
    FROM audit_events a JOIN users u ON u.id = a.user_id WHERE u.email = :'e'" "e=$email")
verify "(a) the audit table has exactly 5 login_failure and 1 account_locked rows (got $row)" \
    [ "$row" = "5|1" ]
# Each attempt's reservation is one UPDATE of the user's row: two may
# meet for a moment.  A lock held across a password hash (tens of ms,
# five times) would show in dozens of the 400 samples; allow a handful.
waits=$(sed -n 's/.*lock_wait_samples=\([0-9]*\).*/\1/p' "$dir/par.locks")
verify "(a) no login waited through another login's password check (samples with a lock wait: ${waits:-unknown} of 400)" \
    [ "${waits:-999}" -le 8 ]

# --------------------------------- (b) a lockout survives killed workers

email=restart-$tag@example.com
pw="pw-b-$tag correct horse"
signup "$email" "$pw" || true
login "$email" "$pw"
keep_at=$at
bad=
for i in 1 2 3 4 5; do
	c=$(login_code "$email" "wrong-b-$tag")
	[ "$c" = 401 ] || bad+=" $c"
done
locked_at=$SECONDS
secret "wrong-b-$tag"
login "$email" "$pw"
check "(b) 5 wrong logins, then the right password: 423${bad:+ (the 5 answered:$bad)}" \
    eval '[ -z "$bad" ] && [ "$code" = 423 ]'
before=$(bash "$stack" workers "$dir" | tr '\n' ' ') || true
for p in $before; do
	if fin_alive "$p" '*finance-fcgi'; then
		kill -KILL "$p" 2>/dev/null || true
	fi
done
replaced() {
	local now p
	now=$(bash "$stack" workers "$dir" 2>/dev/null | tr '\n' ' ')
	[ "$(wc -w <<<"$now")" = "$FIN_WORKERS" ] || return 1
	for p in $before; do
		[[ " $now " != *" $p "* ]] || return 1
	done
}
if wait_for 15 replaced; then
	ok "(b) every worker killed with SIGKILL was replaced (${before% } -> $(bash "$stack" workers "$dir" | tr '\n' ' '))"
else
	not_ok "(b) every worker killed with SIGKILL was replaced within 15 s" \
	    "before: $before" "now: $(bash "$stack" workers "$dir" | tr '\n' ' ')"
fi
login "$email" "$pw"
if [ $((SECONDS - locked_at)) -ge "$lockout_seconds" ]; then
	not_ok "(b) still locked after the restart: inconclusive, the restart outlasted LOCKOUT_SECONDS=$lockout_seconds"
else
	check "(b) after the restart the right password is still 423 ACCOUNT_LOCKED" \
	    eval '[ "$code" = 423 ] && [ "$(jget code)" = ACCOUNT_LOCKED ]'
fi
get_as "$keep_at" /auth/me
check "(b) a session from before the lockout still works after the restart" [ "$code" = 200 ]

# ----------------------------- (c) unlock by itself; success resets count

email=unlock-$tag@example.com
pw="pw-c-$tag correct horse"
signup "$email" "$pw" || true
secret "wrong-c-$tag"
bad=
for i in 1 2 3 4; do
	c=$(login_code "$email" "wrong-c-$tag")
	[ "$c" = 401 ] || bad+=" $c"
done
login "$email" "$pw"
row=$(sql "SELECT failed_logins, locked_until IS NULL FROM users WHERE email = :'e'" "e=$email")
check "(c) 4 failures then a success: 200 and the count is back to 0 (failed_logins|unlocked: $row)" \
    eval '[ -z "$bad" ] && [ "$code" = 200 ] && [ "$row" = "0|t" ]'
for i in 1 2 3 4; do
	c=$(login_code "$email" "wrong-c-$tag")
	[ "$c" = 401 ] || bad+=" $c"
done
login "$email" "$pw"
check "(c) 4 more failures after the reset do not lock (8 in all, but not in a row): 200" \
    eval '[ -z "$bad" ] && [ "$code" = 200 ]'
for i in 1 2 3 4 5; do
	c=$(login_code "$email" "wrong-c-$tag")
	[ "$c" = 401 ] || bad+=" $c"
done
login "$email" "$pw"
retry=$(header Retry-After)
minutes=$(( (lockout_seconds + 59) / 60 ))
[ "$minutes" = 1 ] && unit=minute || unit=minutes
sentence="Account locked due to too many failed login attempts. Try again in $minutes $unit."
check "(c) the 5th failure in a row locks: 423, Retry-After $retry (1..$lockout_seconds), \"$sentence\"" \
    eval '[ -z "$bad" ] && [ "$code" = 423 ] && [[ $retry =~ ^[0-9]+$ ]] &&
	[ "$retry" -ge 1 ] && [ "$retry" -le "$lockout_seconds" ] &&
	[ "$(jget error)" = "$sentence" ]'
[[ $retry =~ ^[0-9]+$ ]] && [ "$retry" -le "$lockout_seconds" ] || retry=$lockout_seconds
sleep $((retry + 1))
c=$(login_code "$email" "wrong-c-$tag")
row=$(sql "SELECT failed_logins FROM users WHERE email = :'e'" "e=$email")
check "(c) after Retry-After a wrong password is 401 again and the count restarts at 1 (got $c, failed_logins $row)" \
    eval '[ "$c" = 401 ] && [ "$row" = 1 ]'
login "$email" "$pw"
row=$(sql "SELECT failed_logins, locked_until IS NULL FROM users WHERE email = :'e'" "e=$email")
check "(c) and the right password logs in: 200, count 0, no lock (failed_logins|unlocked: $row)" \
    eval '[ "$code" = 200 ] && [ "$row" = "0|t" ]'

# ------------------------- (i) logins in flight are not failures

# Only failures that have happened count: 4 wrong logins, then 3 logins
# with the right password at once, each on its own worker, must all be
# 200 -- none refused because the others were still being checked when it
# started or ended.  Three rounds, each from 4 failures again.
email=inflight-$tag@example.com
pw="pw-i-$tag correct horse"
signup "$email" "$pw" || true
secret "wrong-i-$tag"
mkdir -p "$dir/inflight"
ibad=
for r in 1 2 3; do
	for i in 1 2 3 4; do
		c=$(login_code "$email" "wrong-i-$tag")
		[ "$c" = 401 ] || ibad+=" round $r, failure $i: $c;"
	done
	rm -f "$dir"/inflight/*
	for k in 1 2 3; do
		login_code "$email" "$pw" >"$dir/inflight/$k" &
		bg+=($!)
	done
	wait_bg 30
	got=$(cat "$dir"/inflight/* 2>/dev/null | sort | tr '\n' ' ')
	[ "$got" = "200 200 200 " ] || ibad+=" round $r: ${got:-nothing};"
done
verify "(i) 4 wrong logins, then 3 concurrent logins with the right password: 200 200 200, in 3 of 3 rounds${ibad:+ (got:$ibad)}" \
    [ -z "$ibad" ]
row=$(sql "SELECT failed_logins, locked_until IS NULL FROM users WHERE email = :'e'" "e=$email")
verify "(i) and the account is neither counting nor locked afterwards (failed_logins|unlocked: $row)" \
    [ "$row" = "0|t" ]

# A check in flight, held open by psql as lib/lockout.c's workers hold theirs
# (its pid in login_inflight, a session advisory lock on it), after 4
# failures: a login with the right password has no place, so it waits for
# that check and is answered by what it came to -- a success (200), the
# 5th failure (423: the bound holds exactly), or a worker that died (its
# place is freed: 200).
# inflight_check SECONDS OUTCOME: the check, for SECONDS, in the background.
inflight_check() {
	local outcome
	case $2 in
	success) outcome="UPDATE users SET failed_logins = 0, locked_until = NULL,
	    login_inflight = array_remove(login_inflight, pg_backend_pid())
	    WHERE email = :'e';" ;;
	failure) outcome="UPDATE users SET failed_logins = failed_logins + 1,
	    locked_until = now() + interval '$lockout_seconds seconds',
	    login_inflight = array_remove(login_inflight, pg_backend_pid())
	    WHERE email = :'e';" ;;
	died) outcome= ;;
	esac
	printf '%s\n' "SELECT pg_advisory_lock(1819240302, pg_backend_pid());" \
	    "UPDATE users SET login_inflight = login_inflight || pg_backend_pid()
	    WHERE email = :'e';" "SELECT pg_sleep($1);" "$outcome" |
	    "$psql_bin" "$DATABASE_URL" -X -q -t -A -v ON_ERROR_STOP=1 \
	    -v e="$email" >/dev/null 2>>"$dir/inflight.err" &
	bg+=($!)
}
for outcome in success failure died; do
	# Unlocked, and 4 failures again.
	sql "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE email = :'e'" \
	    "e=$email" >/dev/null
	bad=
	for i in 1 2 3 4; do
		c=$(login_code "$email" "wrong-i-$tag")
		[ "$c" = 401 ] || bad+=" $c"
	done
	inflight_check 1.5 "$outcome"
	sleep 0.3
	start=$(date +%s%N)
	c=$(login_code "$email" "$pw")
	took=$(( ($(date +%s%N) - start) / 1000000 ))
	wait_bg 10
	[ "$outcome" = failure ] && want=423 || want=200
	verify "(i) 4 failures and a check in flight that ends as '$outcome': the right password waits for it (${took} ms) and gets $want (got $c)${bad:+ (the failures answered:$bad)}" \
	    eval '[ -z "$bad" ] && [ "$c" = "$want" ] && [ "$took" -ge 900 ]'
done
[ ! -s "$dir/inflight.err" ] || sed 's/^/#   psql: /' "$dir/inflight.err" | head -n 3

# ---------- (j) a wrong password on /auth/password and DELETE /auth/me

# A stolen access token must not buy unlimited guesses at the password:
# a wrong current_password or DELETE /auth/me password counts like a
# failed login (same count, same lock, a login_failure event), and a
# locked account refuses these endpoints as login does.
email=pwguess-$tag@example.com
pw="pw-j-$tag correct horse"
npw="pw-j-$tag new battery staple"
secret "$npw"
secret "wrong-j-$tag"
signup "$email" "$pw" || true
login "$email" "$pw"
jat=$at
# change_password CURRENT: POST /auth/password with jat.
change_password() {
	post /auth/password "{\"current_password\": \"$1\", \"new_password\": \"$npw\"}" \
	    -H "Authorization: Bearer $jat"
}
bad=
for i in 1 2 3 4 5; do
	change_password "wrong-j-$tag"
	[ "$code" = 401 ] || bad+=" $code"
done
change_password "$pw"
retry=$(header Retry-After || true)
check "(j) 5 wrong current_password on POST /auth/password lock the account: the right one is then 423 ACCOUNT_LOCKED, Retry-After ${retry:-none}${bad:+ (the 5 answered:$bad)}" \
    eval '[ -z "$bad" ] && [ "$code" = 423 ] && [ "$(jget code)" = ACCOUNT_LOCKED ] &&
	[[ $retry =~ ^[0-9]+$ ]] && [ "$retry" -ge 1 ] && [ "$retry" -le "$lockout_seconds" ]'
login "$email" "$pw"
check "(j) and login with the right password is 423 ACCOUNT_LOCKED" \
    eval '[ "$code" = 423 ] && [ "$(jget code)" = ACCOUNT_LOCKED ]'
row=$(sql "SELECT failed_logins, locked_until > now() FROM users WHERE email = :'e'" "e=$email")
verify "(j) PostgreSQL counted the 5 failures and holds the lock (failed_logins|locked: $row)" \
    [ "$row" = "5|t" ]
row=$(sql "SELECT count(*) FILTER (WHERE a.action = 'login_failure'
	AND a.details->>'reason' = 'wrong_password'
	AND a.details->>'via' = 'password_change'),
    count(*) FILTER (WHERE a.action = 'account_locked')
    FROM audit_events a JOIN users u ON u.id = a.user_id WHERE u.email = :'e'" "e=$email")
verify "(j) the audit has 5 login_failure (wrong_password, via password_change) and 1 account_locked rows (got $row)" \
    [ "$row" = "5|1" ]
get_as "$jat" /auth/me
check "(j) the session the guesses came from still works (a lockout never touches sessions)" \
    [ "$code" = 200 ]
req DELETE /auth/me -H "Authorization: Bearer $jat" \
    -H 'Content-Type: application/json' --data-binary "{\"password\": \"$pw\"}"
retry=$(header Retry-After || true)
row=$(sql "SELECT deleted_at IS NULL FROM users WHERE email = :'e'" "e=$email")
check "(j) DELETE /auth/me with the right password while locked: 423 with Retry-After ${retry:-none}, nothing deleted" \
    eval '[ "$code" = 423 ] && [ "$(jget code)" = ACCOUNT_LOCKED ] &&
	[[ $retry =~ ^[0-9]+$ ]] && [ "$row" = t ]'

# DELETE /auth/me guesses share the count with logins and password changes.
email=delguess-$tag@example.com
pw="pw-j2-$tag correct horse"
signup "$email" "$pw" || true
login "$email" "$pw"
jat=$at
bad=
for i in 1 2; do
	req DELETE /auth/me -H "Authorization: Bearer $jat" \
	    -H 'Content-Type: application/json' --data-binary "{\"password\": \"wrong-j-$tag\"}"
	[ "$code" = 401 ] || bad+=" delete:$code"
	c=$(login_code "$email" "wrong-j-$tag")
	[ "$c" = 401 ] || bad+=" login:$c"
done
change_password "wrong-j-$tag"
[ "$code" = 401 ] || bad+=" password:$code"
login "$email" "$pw"
row=$(sql "SELECT count(*) FILTER (WHERE a.action = 'login_failure'
	AND a.details->>'via' = 'account_deletion')
    FROM audit_events a JOIN users u ON u.id = a.user_id WHERE u.email = :'e'" "e=$email")
check "(j) 2 wrong DELETE /auth/me + 2 wrong logins + 1 wrong current_password: locked, login 423 (${row:-0} deletion failures audited)${bad:+ (the 5 answered:$bad)}" \
    eval '[ -z "$bad" ] && [ "$code" = 423 ] && [ "$row" = 2 ]'

# The right current password resets the count, as a successful login does.
email=pwreset-$tag@example.com
pw="pw-j3-$tag correct horse"
signup "$email" "$pw" || true
login "$email" "$pw"
jat=$at
bad=
for i in 1 2 3 4; do
	change_password "wrong-j-$tag"
	[ "$code" = 401 ] || bad+=" $code"
done
change_password "$pw"
row=$(sql "SELECT failed_logins, locked_until IS NULL FROM users WHERE email = :'e'" "e=$email")
check "(j) 4 wrong current_password, then the right one: 204 and the count is back to 0 (failed_logins|unlocked: $row)" \
    eval '[ -z "$bad" ] && [ "$code" = 204 ] && [ "$row" = "0|t" ]'
c=$(login_code "$email" "$npw")
check "(j) and the new password logs in: $c" [ "$c" = 200 ]

# ----------------------------------------------------------- (d) timing

# 3 known accounts x 5 wrong passwords (the 5th locks, still after the
# password check) against 15 unknown addresses, interleaved so that load
# from elsewhere hits both alike.  First, every worker builds its dummy
# hash (a one-off cost per process).  A machine busy with other tests can
# skew 15 samples: up to 3 trials, each with fresh accounts; a real oracle
# (a skipped or cheaper hash) fails all three.
# At once: idle workers take requests last in, first out, so one after
# another they would all go to the same worker.
warm=()
for i in $(seq 1 $((FIN_WORKERS * 3))); do
	login_code "nobody-warm-$i-$tag@example.com" "wrong-d-$tag" >/dev/null &
	warm+=($!)
	if [ "${#warm[@]}" = "$FIN_WORKERS" ]; then
		wait "${warm[@]}"
		warm=()
	fi
done
[ "${#warm[@]}" = 0 ] || wait "${warm[@]}"
secret "wrong-d-$tag"
median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# timing_trial T: sets m_unknown, m_known, within (yes/no), tbad.
timing_trial() {
	local t=$1 i k r known=()
	for k in 0 1 2; do
		known+=("timing-$t-$k-$tag@example.com")
		signup "${known[$k]}" "pw-d-$tag-$t-$k correct horse" || true
	done
	: >"$dir/t_unknown"
	: >"$dir/t_known"
	tbad=
	for i in $(seq 0 14); do
		r=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 20 \
		    -X POST -H 'Content-Type: application/json' \
		    --data-binary "{\"email\": \"nobody-$t-$i-$tag@example.com\", \"password\": \"wrong-d-$tag\"}" \
		    "$FIN_BASE_URL/api/v1/auth/login" 2>/dev/null) || r="000 0"
		[ "${r%% *}" = 401 ] || tbad+=" unknown:${r%% *}"
		echo "${r#* }" >>"$dir/t_unknown"
		r=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 20 \
		    -X POST -H 'Content-Type: application/json' \
		    --data-binary "{\"email\": \"${known[$((i % 3))]}\", \"password\": \"wrong-d-$tag\"}" \
		    "$FIN_BASE_URL/api/v1/auth/login" 2>/dev/null) || r="000 0"
		[ "${r%% *}" = 401 ] || tbad+=" known:${r%% *}"
		echo "${r#* }" >>"$dir/t_known"
	done
	m_unknown=$(median "$dir/t_unknown")
	m_known=$(median "$dir/t_known")
	within=$(awk -v a="$m_unknown" -v b="$m_known" 'BEGIN {
		hi = a > b ? a : b; d = a - b; if (d < 0) d = -d
		print (hi > 0 && d <= 0.2 * hi) ? "yes" : "no" }')
}
trials=
for t in 1 2 3; do
	timing_trial "$t"
	trials+=" ${m_unknown}s/${m_known}s"
	[ -n "$tbad" ] || [ "$within" != yes ] || break
done
check "(d) median login time, unknown email vs wrong password, within 20% (15 each, all 401; trials:$trials)" \
    eval '[ -z "$tbad" ] && [ "$within" = yes ]'
[ -z "$tbad" ] || echo "#   statuses that were not 401:$tbad"

# ------------------------------------------- (e) concurrent refreshes

email=race-$tag@example.com
pw="pw-e-$tag correct horse"
signup "$email" "$pw" || true
rounds=5
race_bad=
for r in $(seq 1 $rounds); do
	login "$email" "$pw"
	[ -n "$rt" ] || { race_bad+=" round $r: login $code;"; continue; }
	for side in a b; do
		curl -s -o "$dir/race.$side.body" -w '%{http_code}' --max-time 20 \
		    -X POST -H 'Content-Type: application/json' \
		    --data-binary "{\"refresh_token\": \"$rt\"}" \
		    "$FIN_BASE_URL/api/v1/auth/refresh" >"$dir/race.$side.code" 2>/dev/null &
		bg+=($!)
	done
	wait_bg 30
	harvest "$dir/race.a.body"
	harvest "$dir/race.b.body"
	ca=$(cat "$dir/race.a.code" 2>/dev/null || echo 000)
	cb=$(cat "$dir/race.b.code" 2>/dev/null || echo 000)
	pair=$(printf '%s\n' "$ca" "$cb" | sort | tr '\n' ' ')
	[ "$pair" = "200 401 " ] || race_bad+=" round $r: $ca/$cb;"
done
verify "(e) two concurrent refreshes with one token: exactly one 200 and one 401, in $rounds of $rounds rounds" \
    [ -z "$race_bad" ]
[ -z "$race_bad" ] || echo "#  $race_bad"

# --------------------------------------- (f) revocation outlives Redis

email=redis-$tag@example.com
pw="pw-f-$tag correct horse"
signup "$email" "$pw" || true
login "$email" "$pw"
gone_at=$at
get_as "$gone_at" /sessions
gone_sid=$(jget data.0.id)
login "$email" "$pw"
live_at=$at
get_as "$gone_at" /auth/me
c1=$code
get_as "$live_at" /auth/me
check "(f) two sessions, both answer 200 (and are mirrored in Redis)" \
    eval '[ "$c1" = 200 ] && [ "$code" = 200 ] && [ -n "$gone_sid" ]'
# The mirror keys of the session to be revoked, with their values: a
# "snapshot" to bring back below.
: >"$dir/mirror"
while read -r key; do
	[ -n "$key" ] || continue
	printf '%s\t%s\n' "$key" "$(rcli GET "$key")" >>"$dir/mirror"
done < <(rcli --scan --pattern "*$gone_sid*" 2>/dev/null | head -n 20)
req DELETE "/sessions/$gone_sid" -H "Authorization: Bearer $live_at"
check "(f) DELETE /sessions/{id} of the other session: 204" [ "$code" = 204 ]
get_as "$gone_at" /auth/me
check "(f) the revoked session's token: 401" [ "$code" = 401 ]

bash "$stack" redis-stop "$dir"
get_as "$gone_at" /auth/me
check "(f) Redis down: the revoked session's token is still 401" [ "$code" = 401 ]
get_as "$live_at" /auth/me
check "(f) Redis down: a live session's token is 200 (PostgreSQL answers)" [ "$code" = 200 ]

# Redis comes back restored from a snapshot taken before the revocation:
# it holds the mirror keys saved above.  They must not bring the session
# back (API.md, "Where state lives"), on any worker: each one's first
# requests after the restart are the ones at risk, so the token goes
# 4 times per worker before anything else reaches a worker.
bash "$stack" redis-start "$dir"
restored=0
while IFS=$'\t' read -r key val; do
	[ -n "$key" ] || continue
	rcli SET "$key" "$val" EX 300 >/dev/null && restored=$((restored + 1))
done <"$dir/mirror"
stale=
for i in $(seq 1 $((FIN_WORKERS * 4))); do
	get_as "$gone_at" /auth/me
	[ "$code" = 401 ] || stale+=" $code"
done
verify "(f) Redis restarted from a snapshot with the pre-revocation mirror keys ($restored keys): the revoked token is 401 on $((FIN_WORKERS * 4)) of $((FIN_WORKERS * 4)) requests${stale:+ (got:$stale)}" \
    eval '[ -z "$stale" ] && [ "$restored" -gt 0 ]'
if wait_for 30 status_is 200 /ready; then
	ok "(f) Redis started again: /ready answers 200"
else
	not_ok "(f) Redis started again: /ready answers 200 within 30 s" "status: $code"
fi
stale=
for i in $(seq 1 $((FIN_WORKERS * 2))); do
	get_as "$gone_at" /auth/me
	[ "$code" = 401 ] || stale+=" $code"
done
verify "(f) Redis back: the revoked session's token is still 401 (${FIN_WORKERS}x2 requests)${stale:+ (got:$stale)}" \
    [ -z "$stale" ]
get_as "$live_at" /auth/me
check "(f) Redis back: the live session's token is 200" [ "$code" = 200 ]

# Redis stalls (CLIENT PAUSE) just while a session is revoked: the worker
# cannot delete the mirror key then.  API.md: a revoked session's tokens
# stop working at once -- not when the mirror key expires.
login "$email" "$pw"
stall_victim=$at
login "$email" "$pw"
stall_keeper=$at
get_as "$stall_victim" /auth/me
# shellcheck disable=SC2034  # read by the eval below
c1=$code
get_as "$stall_keeper" /auth/me
check "(f) two more sessions answer 200 (mirrored)" eval '[ "$c1" = 200 ] && [ "$code" = 200 ]'
rcli CLIENT PAUSE 1500 >/dev/null || true
req DELETE /sessions -H "Authorization: Bearer $stall_keeper"
check "(f) DELETE /sessions while Redis stalls for 1.5 s: 204" [ "$code" = 204 ]
sleep 1.7
stale=
for i in $(seq 1 $((FIN_WORKERS * 2))); do
	get_as "$stall_victim" /auth/me
	[ "$code" = 401 ] || stale+=" $code"
done
verify "(f) after the stall the session revoked during it is 401 on $((FIN_WORKERS * 2)) of $((FIN_WORKERS * 2)) requests${stale:+ (got:$stale)}" \
    [ -z "$stale" ]

# ------------------------------------------------- (h) forged tokens

email=forge-$tag@example.com
pw="pw-h-$tag correct horse"
signup "$email" "$pw" || true
login "$email" "$pw"
real=$at
IFS=. read -r jh jp js <<<"$real"
payload=$(b64u_dec "$jp") || true
get_as "$real" /auth/me
# shellcheck disable=SC2001  # a regex, not a fixed string
check "(h) the real token answers 200 (its claims: $(sed 's/"jti":"[^"]*",//' <<<"$payload"))" \
    [ "$code" = 200 ]
resigned=$(hmac_b64u sha256 "$JWT_SECRET" "$jh.$jp")
verify "(h) this script signs like the server (HS256 over the same bytes with JWT_SECRET gives the same signature)" \
    [ "$resigned" = "$js" ]

# forged DESCRIPTION TOKEN: expects 401 UNAUTHORIZED with WWW-Authenticate.
forged() {
	get_as "$2" /auth/me
	check "(h) $1: 401" eval '[ "$code" = 401 ] && [ "$(jget code)" = UNAUTHORIZED ] &&
	    header WWW-Authenticate | grep -q "^Bearer"'
}
none_h=$(printf '%s' '{"alg":"none","typ":"JWT"}' | b64u_enc)
forged "alg none, empty signature, the live session's claims" "$none_h.$jp."
forged "alg none, no signature part" "$none_h.$jp"
forged "alg none with the real signature" "$none_h.$jp.$js"
none_h2=$(printf '%s' '{"alg":"NONE"}' | b64u_enc)
forged "alg NONE" "$none_h2.$jp."
h512=$(printf '%s' '{"alg":"HS512","typ":"JWT"}' | b64u_enc)
forged "HS512 signed with the right JWT_SECRET" "$h512.$jp.$(hmac_b64u sha512 "$JWT_SECRET" "$h512.$jp")"
h384=$(printf '%s' '{"alg":"HS384","typ":"JWT"}' | b64u_enc)
if command -v openssl >/dev/null 2>&1; then
	forged "HS384 signed with the right JWT_SECRET" \
	    "$h384.$jp.$(printf '%s' "$h384.$jp" | openssl dgst -sha384 -hmac "$JWT_SECRET" -binary | b64u_enc)"
fi
first=${js:0:1}
[ "$first" = A ] && other=B || other=A
forged "one character of the signature changed" "$jh.$jp.$other${js:1}"
# Another user's id in the claims, the signature left as it was.
signup "forge-victim-$tag@example.com" "pw-h2-$tag correct horse" || true
victim=$(jget user.id)
evil=${payload//\"sub\":\"$uid\"/\"sub\":\"$victim\"}
if [ -n "$victim" ] && [ "$evil" != "$payload" ]; then
	forged "sub changed to another user, signature kept" "$jh.$(printf '%s' "$evil" | b64u_enc).$js"
else
	not_ok "(h) sub changed to another user: could not craft the claims" "claims: $payload"
fi
# Validly signed (HS256, the right key) but expired two minutes ago.
now=$(date +%s)
expired=$(sed -e "s/\"iat\":[0-9]*/\"iat\":$((now - 1200))/" \
    -e "s/\"exp\":[0-9]*/\"exp\":$((now - 120))/" <<<"$payload")
ep=$(printf '%s' "$expired" | b64u_enc)
forged "HS256 with the right key but exp two minutes ago" "$jh.$ep.$(hmac_b64u sha256 "$JWT_SECRET" "$jh.$ep")"
get_as "$real" /auth/me
check "(h) after all that the real token still answers 200" [ "$code" = 200 ]

# ---------------------- (k) a login racing a password change is revoked

# The attacker knows the old password and logs in while the owner changes
# it.  PostgreSQL is made to hold the login between its password check and
# its commit: a lock on audit_events stops its last INSERT, and the
# password change, run meanwhile, stops at its own audit INSERT after it
# revoked the sessions it could see.  A login that committed after that
# must not hold a session the change did not revoke.
email=pwrace-$tag@example.com
pw="pw-k-$tag correct horse"
npw="pw-k-$tag new battery staple"
secret "$npw"
signup "$email" "$pw" || true
login "$email" "$pw"
owner_at=$at
printf '%s\n' "BEGIN; LOCK TABLE audit_events IN SHARE MODE;" \
    "SELECT pg_sleep(4); COMMIT;" |
    "$psql_bin" "$DATABASE_URL" -X -q -t -A >/dev/null 2>"$dir/pwrace.err" &
locker=$!
bg+=("$locker")
sleep 0.5
curl -s -o "$dir/pwrace.login" -w '%{http_code}' --max-time 20 -X POST \
    -H 'Content-Type: application/json' \
    --data-binary "{\"email\": \"$email\", \"password\": \"$pw\"}" \
    "$FIN_BASE_URL/api/v1/auth/login" >"$dir/pwrace.login.code" 2>/dev/null &
bg+=($!)
sleep 1.5
post /auth/password "{\"current_password\": \"$pw\", \"new_password\": \"$npw\"}" \
    -H "Authorization: Bearer $owner_at"
change=$code
wait_bg 30
harvest "$dir/pwrace.login"
lcode=$(cat "$dir/pwrace.login.code" 2>/dev/null || echo 000)
race_at=$(jget access_token "$dir/pwrace.login")
race_rt=$(jget refresh_token "$dir/pwrace.login")
get_as "$owner_at" /auth/me
owner=$code
after=
if [ "$lcode" = 200 ]; then
	get_as "$race_at" /auth/me
	after="me $code"
	post /auth/refresh "{\"refresh_token\": \"$race_rt\"}"
	after+=", refresh $code"
fi
verify "(k) a login with the old password racing POST /auth/password (change $change, login $lcode${after:+, then its tokens: $after}): no session of it survives; the changer's own works ($owner)" \
    eval '[ "$change" = 204 ] && [ "$owner" = 200 ] &&
	{ [ "$lcode" = 401 ] || [ "$after" = "me 401, refresh 401" ]; }'
row=$(sql "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE u.email = :'e' AND s.revoked_at IS NULL" "e=$email")
verify "(k) PostgreSQL holds exactly one live session, the changer's (got $row)" \
    [ "$row" = 1 ]
[ ! -s "$dir/pwrace.err" ] || sed 's/^/#   psql: /' "$dir/pwrace.err" | head -n 3

# ------------- (l) many sessions revoked with Redis down: one patience

email=manyrev-$tag@example.com
pw="pw-l-$tag correct horse"
signup "$email" "$pw" || true
others=()
for i in 1 2 3 4 5 6; do
	login "$email" "$pw"
	others+=("$at")
done
login "$email" "$pw"
keep_at=$at
bash "$stack" redis-stop "$dir"
start=$(date +%s%N)
req DELETE /sessions -H "Authorization: Bearer $keep_at"
took=$(( ($(date +%s%N) - start) / 1000000 ))
# lib/sessions.c waits UNMIRROR_PATIENCE_MS (2 s) for Redis; per session
# that would be 12 s here.
check "(l) Redis down: DELETE /sessions revoking 6 sessions answers 204 within 5 s (${took} ms)" \
    eval '[ "$code" = 204 ] && [ "$took" -lt 5000 ]'
stale=
for t in "${others[@]}"; do
	get_as "$t" /auth/me
	[ "$code" = 401 ] || stale+=" $code"
done
get_as "$keep_at" /auth/me
check "(l) Redis down: the 6 revoked sessions are 401${stale:+ (got:$stale)}, the current one 200" \
    eval '[ -z "$stale" ] && [ "$code" = 200 ]'
bash "$stack" redis-start "$dir"
wait_for 30 status_is 200 /ready || true
stale=
for t in "${others[@]}"; do
	get_as "$t" /auth/me
	[ "$code" = 401 ] || stale+=" $code"
done
verify "(l) Redis back: the 6 revoked sessions are still 401${stale:+ (got:$stale)}" \
    [ -z "$stale" ]

# ------------------------------------------------ (g) no secret in logs

sort -u "$secrets_file" -o "$secrets_file"
# nginx buffers its access log and flushes it each second.
sleep 1.5
# Short strings could match by chance; ours are all 20+ characters.
awk 'length($0) >= 16' "$secrets_file" >"$secrets_file.long"
nsecrets=$(wc -l <"$secrets_file.long")
logs=("$FIN_LOG" "$FIN_NGINX_LOG_DIR/access.log" "$FIN_NGINX_LOG_DIR/error.log"
    "$dir/logs/nginx.log" "$dir/logs/postgres.log" "$dir/logs/redis.log")
found=
for f in "${logs[@]}"; do
	[ -f "$f" ] || continue
	hits=$(grep -F -o -f "$secrets_file.long" "$f" 2>/dev/null | sort -u | head -n 5) || true
	[ -z "$hits" ] || found+=" ${f#"$dir"/}: $(cut -c1-12 <<<"$hits" | tr '\n' ' ')"
done
verify "(g) none of the $nsecrets passwords and tokens used here is in the workers', nginx's, PostgreSQL's or Redis's logs" \
    [ -z "$found" ]
[ -z "$found" ] || echo "#   found (first 12 characters):$found"
verify "(g) the logs were written (the workers' log has request lines)" \
    grep -q '"event":"request"' "$FIN_LOG"

# Whatever happened above, no request may have been a 500 (API.md: errors
# are the statuses of the contract; a 500 is a bug).  /ready's 503 while
# Redis is stopped is its answer, asked for by the waits after (f) and (l).
fivexx=$(grep '"event":"request"' "$FIN_LOG" | grep '"status":5' |
    grep -vc '"route":"/ready","status":503' || true)
verify "no request of this script answered 5xx (the workers' log has $fivexx)" [ "$fivexx" = 0 ]
if [ "$fivexx" != 0 ]; then
	grep '"level":"error"' "$FIN_LOG" | grep -v '"event":"request"' | head -n 3 |
	    sed 's/^/#   /'
fi

e2e_finish
