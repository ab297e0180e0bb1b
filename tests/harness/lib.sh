# shellcheck shell=bash
#
# tests/harness/lib.sh: start and stop the services libfinance runs on --
# PostgreSQL, Redis, the finance-fcgi workers under spawn-fcgi, and nginx
# with deploy/nginx.conf -- all on 127.0.0.1, all inside one directory.
# Sourced by tests/harness/stack, tests/harness/with-services and
# script/server, so that start-up code exists once.
#
# The directory (DIR below) is laid out as:
#   pg/ pg-run/     PostgreSQL data (owned by postgres when run as root), socket
#   redis/          Redis working directory (nothing is saved)
#   logs/           postgres.log redis.log migrate.log finance.log nginx.log
#   nginx/          nginx.conf, nginx.pid, logs/access.log, logs/error.log, tmp/
#   run/            pid files (redis.pid master.pid nginx.pid), master.status
#   finance.sock    the workers' FastCGI socket
#
# Functions print what went wrong on stderr and return non-zero; the caller
# decides what that means (`fin_x ... || exit 1`).  They need top_srcdir
# (for deploy/ and db/migrations) and top_builddir (for src/finance-fcgi
# and src/finance-migrate); both default to places relative to this file.

FIN_PROG=${FIN_PROG:-$(basename "$0")}
fin_harness_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

# nginx lives in /usr/sbin, which a user's PATH may not have.
PATH=$PATH:/usr/sbin:/sbin
# postgres (as its own user) and nginx's workers must read what we create.
umask 022

fin_note() { printf '%s: %s\n' "$FIN_PROG" "$*" >&2; }

if [ -z "${top_srcdir:-}" ]; then
	top_srcdir=$(cd "$fin_harness_dir/../.." && pwd -P)
fi
top_srcdir=$(cd "$top_srcdir" && pwd -P)
if [ -z "${top_builddir:-}" ]; then
	# The tree itself when configured there, else script/test's build/.
	if [ -f "$top_srcdir/config.status" ] || [ ! -f "$top_srcdir/build/config.status" ]; then
		top_builddir=$top_srcdir
	else
		top_builddir=$top_srcdir/build
	fi
fi
top_builddir=$(cd "$top_builddir" && pwd -P)
export top_srcdir top_builddir

# Fixed test secrets (32+ bytes): tests may sign and check tokens with them.
# shellcheck disable=SC2034 # used by the scripts that source this file
FIN_TEST_JWT_SECRET=test-jwt-secret-0123456789abcdef0123456789abcdef
# shellcheck disable=SC2034
FIN_TEST_REFRESH_SECRET=test-refresh-secret-0123456789abcdef0123456789ab

# -------------------------------------------------------------- processes

# fin_alive PID [COMM-GLOB]: PID runs (a zombie does not count) and, when
# given, its command name matches COMM-GLOB.  Guards every kill against a
# pid that was reused after its process died.
fin_alive() {
	local pid=$1 stat state comm
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
	state=${stat##*) }
	state=${state%% *}
	case $state in Z|X|x) return 1 ;; esac
	if [ -n "${2:-}" ]; then
		read -r comm 2>/dev/null <"/proc/$pid/comm" || return 1
		# shellcheck disable=SC2053 # a glob on purpose
		[[ $comm == $2 ]] || return 1
	fi
	return 0
}

# fin_wait_gone PID SECONDS: waits until PID has exited (reaping it when it
# is a child of this shell); false if it is still there after SECONDS.
fin_wait_gone() {
	local pid=$1 i n=$(($2 * 10))
	for ((i = 0; i < n; i++)); do
		if ! fin_alive "$pid"; then
			wait "$pid" 2>/dev/null || true
			return 0
		fi
		sleep 0.1
	done
	! fin_alive "$pid"
}

# fin_stop_pid PID COMM-GLOB SIGNAL SECONDS: sends SIGNAL, waits, then KILLs.
fin_stop_pid() {
	local pid=$1 comm=$2 sig=$3 secs=$4
	fin_alive "$pid" "$comm" || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -"$sig" "$pid" 2>/dev/null || true
	fin_wait_gone "$pid" "$secs" && return 0
	fin_note "$comm (pid $pid) did not stop ${secs}s after SIG$sig: killing it"
	kill -KILL "$pid" 2>/dev/null || true
	fin_wait_gone "$pid" 5
}

# Pid files hold "PID STARTTIME" (field 22 of /proc/PID/stat), so that a
# stale file (after a reboot, a kill -9) never names somebody else's
# process that happens to have the same pid now.
fin_proc_start() {
	local stat rest
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	rest=${stat##*) }
	# shellcheck disable=SC2086
	set -- $rest
	echo "${20}"
}

fin_write_pidfile() {
	echo "$2 $(fin_proc_start "$2")" >"$1.tmp" && mv "$1.tmp" "$1"
}

# fin_pidfile_alive FILE COMM-GLOB: prints the pid in FILE if that very
# process still runs.
fin_pidfile_alive() {
	local pid start
	[ -s "$1" ] || return 1
	read -r pid start <"$1" || return 1
	fin_alive "$pid" "$2" || return 1
	[ -z "$start" ] || [ "$(fin_proc_start "$pid")" = "$start" ] || return 1
	echo "$pid"
}

# fin_children PID: the pids of PID's live children, one per line, sorted.
fin_children() {
	ps -o pid=,stat= --ppid "$1" 2>/dev/null | awk '$2 !~ /^Z/ { print $1 }' | sort -n
}

# fin_stop_tree PID SECONDS: TERM to PID and all its descendants, KILL what
# is left after SECONDS (a test may have started processes of its own).
fin_stop_tree() {
	local pids p
	pids=$(ps -e -o pid=,ppid= 2>/dev/null | awk -v top="$1" '
	    { kids[$2] = kids[$2] " " $1 }
	    END { n = 1; q[1] = top
		for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], k, " ")
		    for (j = 1; j <= m; j++) q[++n] = k[j] } }')
	[ -n "$pids" ] || pids=$1
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	fin_wait_gone "$1" "$2" || true
	for p in $pids; do
		fin_alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	fin_wait_gone "$1" 5
}

# fin_tail_logs FILE...: the end of each log, for a failure message.
fin_tail_logs() {
	local f
	for f in "$@"; do
		[ -s "$f" ] || continue
		printf '==> %s (last 25 lines) <==\n' "$f" >&2
		tail -n 25 "$f" | sed 's/^/    /' >&2
	done
}

# ------------------------------------------------------------------ ports

fin_port_in_use() {
	# Any socket on the port counts: an outgoing connection's local port
	# blocks a bind to 127.0.0.1 as surely as a listener does.
	if command -v ss >/dev/null 2>&1 &&
	    [ -n "$(ss -Htan "sport = :$1" 2>/dev/null)" ]; then
		return 0
	fi
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# fin_free_port VAR: sets VAR to a free port in 20000-32767 that this shell
# has not handed out before (services start one after the other, so two
# picks must not collide before the first one binds).  The range stays
# below Linux's ephemeral ports (32768-60999), which busy clients take.
fin_ports_given=" "
fin_free_port() {
	local i p
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12768))
		case $fin_ports_given in *" $p "*) continue ;; esac
		fin_port_in_use "$p" && continue
		fin_ports_given+="$p "
		printf -v "$1" '%s' "$p"
		return 0
	done
	fin_note "could not find a free port in 20000-32767"
	return 1
}

# ------------------------------------------------------------- directory

# fin_dir_init DIR: creates the layout; DIR must be traversable by nginx's
# workers (www-data) and by postgres, hence 0755.
fin_dir_init() {
	local dir=$1
	case $dir in
	/*) ;;
	*) fin_note "internal error: $dir is not absolute"; return 1 ;;
	esac
	if [[ ! $dir =~ ^[A-Za-z0-9._/+-]+$ ]]; then
		fin_note "$dir: the path may only contain letters, digits and ._/+- (it goes into nginx.conf and postgresql options)"
		return 1
	fi
	if [ ${#dir} -gt 80 ]; then
		fin_note "$dir: path too long for unix sockets under it (over 80 characters)"
		return 1
	fi
	mkdir -p "$dir"/{logs,run,redis,nginx/logs,nginx/tmp} || return 1
	chmod 755 "$dir"
	if [ "$(id -u)" = 0 ] && ! fin_as_pg test -x "$dir"; then
		fin_note "the postgres user cannot reach $dir: give its parent directories o+x"
		return 1
	fi
}

# --------------------------------------------------------------- postgres

fin_pg_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) || true
	if [ -z "$d" ] && command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir)
	fi
	if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
		fin_note "PostgreSQL server binaries not found (install postgresql: script/bootstrap)"
		return 1
	fi
	echo "$d"
}

# PostgreSQL refuses to run as root: as root, run its tools as postgres.
fin_as_pg() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && setpriv --reuid=postgres --regid=postgres --init-groups -- "$@")
	else
		"$@"
	fi
}

# fin_pg_up DIR PORT MODE: initdb (once) and start PostgreSQL on
# 127.0.0.1:PORT with its socket in DIR/pg-run, then create the database
# finance.  MODE test turns durability off (fsync, full pages) for speed;
# dev keeps PostgreSQL's defaults.  A server left running on DIR/pg by a
# previous run is stopped first.
fin_pg_up() {
	local dir=$1 port=$2 mode=$3 bin log opts nosync=
	bin=$(fin_pg_bindir) || return 1
	log=$dir/logs/postgres.log
	touch "$log"
	mkdir -p "$dir/pg" "$dir/pg-run"
	if [ "$(id -u)" = 0 ]; then
		chown -R postgres:postgres "$dir/pg" "$dir/pg-run" "$log"
	elif [ ! -O "$dir/pg" ]; then
		fin_note "$dir/pg belongs to $(stat -c %U "$dir/pg"), not to you: run as root or remove it"
		return 1
	fi
	chmod 700 "$dir/pg"
	if [ -n "$(fin_pg_pid "$dir")" ]; then
		fin_note "stopping the PostgreSQL left running on $dir/pg"
		fin_pg_down "$dir" || return 1
	fi
	if [ ! -f "$dir/pg/PG_VERSION" ]; then
		[ "$mode" = test ] && nosync=--no-sync
		if ! fin_as_pg "$bin/initdb" -D "$dir/pg" -U postgres -A trust \
		    -E UTF8 --locale=C.UTF-8 $nosync >>"$log" 2>&1; then
			fin_note "initdb failed"
			fin_tail_logs "$log"
			return 1
		fi
	fi
	opts="-c listen_addresses=127.0.0.1 -c port=$port"
	opts+=" -c unix_socket_directories=$dir/pg-run"
	if [ "$mode" = test ]; then
		opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		opts+=" -c shared_buffers=32MB"
	fi
	if ! fin_as_pg "$bin/pg_ctl" -D "$dir/pg" -l "$log" -w -t 60 -o "$opts" \
	    start >>"$log" 2>&1; then
		fin_note "PostgreSQL did not start on 127.0.0.1:$port"
		fin_tail_logs "$log"
		return 1
	fi
	if [ "$("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -XtAq \
	    -c "SELECT 1 FROM pg_database WHERE datname = 'finance'" 2>>"$log")" != 1 ]; then
		if ! "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres finance \
		    >>"$log" 2>&1; then
			fin_note "could not create the database finance"
			fin_tail_logs "$log"
			return 1
		fi
	fi
}

# fin_pg_pid DIR: the postmaster's pid, if it runs.
fin_pg_pid() {
	local pid
	[ -f "$1/pg/postmaster.pid" ] || return 0
	pid=$(head -n 1 "$1/pg/postmaster.pid" 2>/dev/null) || return 0
	fin_alive "$pid" postgres || return 0
	# Ours, not another cluster's postmaster that got the same pid.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-D $1/pg " &&
		echo "$pid"
	return 0
}

# fin_pg_signal DIR SIGNAL: SIGNAL to the postmaster and its children
# (STOP freezes it with its connections open; CONT thaws it).
fin_pg_signal() {
	local pid
	pid=$(fin_pg_pid "$1")
	[ -n "$pid" ] || return 1
	# shellcheck disable=SC2046 # one pid a word
	kill -s "$2" "$pid" $(ps -o pid= --ppid "$pid" 2>/dev/null)
}

# fin_pg_down DIR: fast shutdown (clients are disconnected), waited for.
fin_pg_down() {
	local dir=$1 bin pid
	pid=$(fin_pg_pid "$dir")
	[ -n "$pid" ] || return 0
	bin=$(fin_pg_bindir) || return 1
	# A test that froze it may have failed before thawing it.
	fin_pg_signal "$dir" CONT 2>/dev/null || true
	if ! fin_as_pg "$bin/pg_ctl" -D "$dir/pg" -m fast -w -t 30 stop \
	    >>"$dir/logs/postgres.log" 2>&1; then
		fin_note "pg_ctl stop failed"
		fin_stop_pid "$pid" postgres QUIT 5 || return 1
	fi
	fin_wait_gone "$pid" 10
}

# fin_pg_up_anyport DIR MODE: fin_pg_up on a free port, with a new port
# when another process took it first; sets PG_PORT.
fin_pg_up_anyport() {
	local _
	for _ in 1 2 3; do
		fin_free_port PG_PORT || return 1
		fin_pg_up "$1" "$PG_PORT" "$2" && return 0
		grep -q 'Address already in use' "$1/logs/postgres.log" || return 1
		fin_note "port $PG_PORT was taken meanwhile: trying another"
	done
	return 1
}

# ------------------------------------------------------------------ redis

# fin_redis_up DIR PORT: Redis on 127.0.0.1:PORT, nothing saved to disk,
# in the foreground of a background job; pid in DIR/run/redis.pid.
fin_redis_up() {
	local dir=$1 port=$2 log=$1/logs/redis.log pid i
	if pid=$(fin_pidfile_alive "$dir/run/redis.pid" redis-server); then
		fin_note "stopping the Redis left running from $dir (pid $pid)"
		fin_stop_pid "$pid" redis-server TERM 10 || return 1
	fi
	mkdir -p "$dir/redis"
	redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
	    --dir "$dir/redis" --daemonize no --logfile '' \
	    </dev/null >>"$log" 2>&1 &
	pid=$!
	fin_write_pidfile "$dir/run/redis.pid" "$pid"
	for ((i = 0; i < 100; i++)); do
		if ! fin_alive "$pid"; then
			wait "$pid" 2>/dev/null || true
			fin_note "Redis exited at start-up on 127.0.0.1:$port"
			fin_tail_logs "$log"
			return 1
		fi
		[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] &&
			return 0
		sleep 0.1
	done
	fin_note "Redis did not answer PING on 127.0.0.1:$port within 10s"
	fin_tail_logs "$log"
	return 1
}

# fin_redis_signal DIR SIGNAL: SIGNAL to Redis (STOP freezes it; CONT).
fin_redis_signal() {
	local pid
	pid=$(fin_pidfile_alive "$1/run/redis.pid" redis-server) || return 1
	kill -s "$2" "$pid"
}

fin_redis_down() {
	local pid
	pid=$(fin_pidfile_alive "$1/run/redis.pid" redis-server) || return 0
	# A test that froze it may have failed before thawing it.
	kill -s CONT "$pid" 2>/dev/null || true
	fin_stop_pid "$pid" redis-server TERM 10
}

fin_redis_up_anyport() {
	local _
	for _ in 1 2 3; do
		fin_free_port REDIS_PORT || return 1
		fin_redis_up "$1" "$REDIS_PORT" && return 0
		grep -q 'Address already in use' "$1/logs/redis.log" || return 1
		fin_note "port $REDIS_PORT was taken meanwhile: trying another"
	done
	return 1
}

# ------------------------------------------------------------- migrations

# fin_migrate DIR DATABASE_URL: applies db/migrations.  Run from DIR so
# that no ./.env is read.
fin_migrate() {
	local dir=$1 url=$2 log=$1/logs/migrate.log
	if ! (cd "$dir" && env -u FINANCE_ENV_FILE DATABASE_URL="$url" \
	    "$top_builddir/src/finance-migrate" --dir "$top_srcdir/db/migrations") \
	    >>"$log" 2>&1; then
		fin_note "finance-migrate failed"
		fin_tail_logs "$log"
		return 1
	fi
}

# ---------------------------------------------------------------- workers

# fin_workers_up DIR NWORKERS CWD: spawn-fcgi opens DIR/finance.sock (mode
# 0666: nginx's workers run as another user) and execs finance-fcgi, so
# the pid in DIR/run/master.pid is the master's.  A watcher subshell keeps
# the master's exit status in DIR/run/master.status.  The workers' config
# comes from the caller's environment; they log to DIR/logs/finance.log.
fin_workers_up() {
	local dir=$1 n=$2 cwd=$3 log=$1/logs/finance.log pid i
	if pid=$(fin_pidfile_alive "$dir/run/master.pid" '*finance-fcgi'); then
		fin_note "stopping the finance-fcgi master left running from $dir (pid $pid)"
		fin_stop_pid "$pid" '*finance-fcgi' TERM 30 || return 1
	fi
	rm -f "$dir/run/master.pid" "$dir/run/master.status"
	(
		cd "$cwd" || exit 1
		spawn-fcgi -n -s "$dir/finance.sock" -M 0666 -- \
		    "$top_builddir/src/finance-fcgi" --workers "$n" \
		    </dev/null >>"$log" 2>&1 &
		fin_write_pidfile "$dir/run/master.pid" $!
		rc=0
		wait $! || rc=$?
		echo "$rc" >"$dir/run/master.status"
	) </dev/null >/dev/null 2>&1 &
	for ((i = 0; i < 100; i++)); do
		[ -s "$dir/run/master.pid" ] && break
		sleep 0.05
	done
	FIN_MASTER_PID=$(cut -d' ' -f1 "$dir/run/master.pid" 2>/dev/null) || {
		fin_note "spawn-fcgi did not start"
		return 1
	}
	# Up when the master has its workers; down when it exited.
	for ((i = 0; i < 150; i++)); do
		if [ -s "$dir/run/master.status" ]; then
			fin_note "finance-fcgi exited at start-up with status $(cat "$dir/run/master.status")"
			fin_tail_logs "$log"
			return 1
		fi
		if fin_alive "$FIN_MASTER_PID" '*finance-fcgi' &&
		    [ "$(fin_children "$FIN_MASTER_PID" | wc -l)" -ge "$n" ]; then
			return 0
		fi
		sleep 0.1
	done
	fin_note "finance-fcgi did not start $n workers within 15s"
	fin_tail_logs "$log"
	return 1
}

# fin_workers_down DIR [SECONDS]: SIGTERM to the master (requests in flight
# finish), waited for.
fin_workers_down() {
	local pid
	pid=$(fin_pidfile_alive "$1/run/master.pid" '*finance-fcgi') || return 0
	fin_stop_pid "$pid" '*finance-fcgi' TERM "${2:-30}"
}

# ------------------------------------------------------------------ nginx

# fin_nginx_conf DIR LISTEN: deploy/nginx.conf filled in for DIR.
fin_nginx_conf() {
	local dir=$1 listen=$2
	sed -e "s|@LISTEN@|$listen|g" \
	    -e "s|@FCGI_SOCKET@|$dir/finance.sock|g" \
	    -e "s|@PREFIX@|$dir/nginx|g" \
	    "$top_srcdir/deploy/nginx.conf" >"$dir/nginx/nginx.conf" || return 1
	if grep -q '@[A-Z_]*@' "$dir/nginx/nginx.conf"; then
		fin_note "deploy/nginx.conf has a placeholder this harness does not know:"
		grep -n '@[A-Z_]*@' "$dir/nginx/nginx.conf" >&2
		return 1
	fi
}

# fin_nginx_up DIR PORT: nginx on 127.0.0.1:PORT in the foreground of a
# background job; pid in DIR/run/nginx.pid.
fin_nginx_up() {
	local dir=$1 port=$2 log=$1/logs/nginx.log pid i
	if pid=$(fin_pidfile_alive "$dir/run/nginx.pid" nginx); then
		fin_note "stopping the nginx left running from $dir (pid $pid)"
		fin_stop_pid "$pid" nginx TERM 10 || return 1
	fi
	fin_nginx_conf "$dir" "127.0.0.1:$port" || return 1
	if ! nginx -q -t -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e stderr \
	    -g 'daemon off;' >>"$log" 2>&1; then
		fin_note "nginx -t failed on $dir/nginx/nginx.conf"
		fin_tail_logs "$log"
		return 1
	fi
	nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e stderr -g 'daemon off;' \
	    </dev/null >>"$log" 2>&1 &
	pid=$!
	fin_write_pidfile "$dir/run/nginx.pid" "$pid"
	for ((i = 0; i < 100; i++)); do
		if ! fin_alive "$pid"; then
			wait "$pid" 2>/dev/null || true
			fin_note "nginx exited at start-up on 127.0.0.1:$port"
			fin_tail_logs "$log" "$dir/nginx/logs/error.log"
			return 1
		fi
		fin_port_in_use "$port" && return 0
		sleep 0.1
	done
	fin_note "nginx did not listen on 127.0.0.1:$port within 10s"
	fin_tail_logs "$log" "$dir/nginx/logs/error.log"
	return 1
}

fin_nginx_down() {
	local pid
	pid=$(fin_pidfile_alive "$1/run/nginx.pid" nginx) || return 0
	fin_stop_pid "$pid" nginx TERM 10
}

fin_nginx_up_anyport() {
	local _
	for _ in 1 2 3; do
		fin_free_port NGINX_PORT || return 1
		fin_nginx_up "$1" "$NGINX_PORT" && return 0
		grep -q 'Address already in use' "$1/logs/nginx.log" \
		    "$1/nginx/logs/error.log" 2>/dev/null || return 1
		fin_note "port $NGINX_PORT was taken meanwhile: trying another"
	done
	return 1
}

# --------------------------------------------------------------- together

# fin_wait_ready DIR URL SECONDS: waits for GET URL to answer 200 while
# the master and nginx run.
fin_wait_ready() {
	local dir=$1 url=$2 secs=$3 i code=000
	for ((i = 0; i < secs * 5; i++)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null) || code=000
		[ "$code" = 200 ] && return 0
		if ! fin_pidfile_alive "$dir/run/master.pid" '*finance-fcgi' >/dev/null ||
		    ! fin_pidfile_alive "$dir/run/nginx.pid" nginx >/dev/null; then
			fin_note "finance-fcgi or nginx exited while waiting for $url"
			break
		fi
		sleep 0.2
	done
	fin_note "$url did not answer 200 within ${secs}s (last status: $code)"
	fin_tail_logs "$dir/logs/finance.log" "$dir/logs/nginx.log" \
	    "$dir/nginx/logs/error.log" "$dir/logs/postgres.log" "$dir/logs/redis.log"
	return 1
}

# fin_running DIR: true when something started from DIR still runs.
fin_running() {
	fin_pidfile_alive "$1/run/nginx.pid" nginx >/dev/null ||
	    fin_pidfile_alive "$1/run/master.pid" '*finance-fcgi' >/dev/null ||
	    fin_pidfile_alive "$1/run/redis.pid" redis-server >/dev/null ||
	    [ -n "$(fin_pg_pid "$1")" ]
}

# fin_down DIR: stops whatever runs from DIR, front to back.
fin_down() {
	local dir=$1 rc=0
	fin_nginx_down "$dir" || rc=1
	fin_workers_down "$dir" || rc=1
	fin_redis_down "$dir" || rc=1
	fin_pg_down "$dir" || rc=1
	rm -f "$dir/finance.sock"
	return $rc
}

# fin_sanitizer_reports FILE: prints sanitizer reports found in FILE.
fin_sanitizer_reports() {
	[ -f "$1" ] || return 0
	grep -E 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:' "$1" || true
}
