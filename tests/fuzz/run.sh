#!/usr/bin/env bash
#
# tests/fuzz/run.sh: builds the libFuzzer targets with clang
# (-fsanitize=fuzzer,address,undefined) and runs each one for
# FUZZ_SECONDS (default 30).  New inputs go to a scratch corpus; a crash
# leaves its input in tests/fuzz/crashes/ (add it to the seed corpus when
# fixed) and fails the run.  Prints `ok N - fuzz_x` lines and a summary.
#
#   FUZZ_SECONDS=30 FUZZ_CC=clang top_srcdir=. top_builddir=. tests/fuzz/run.sh [target...]
set -euo pipefail

src=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}
build=${top_builddir:-$src}
cc=${FUZZ_CC:-clang}
seconds=${FUZZ_SECONDS:-30}
out=$build/tests/fuzz/bin
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_json fuzz_jwt fuzz_cursor fuzz_query fuzz_ids fuzz_request)

command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 99; }
[ -f "$build/config.h" ] || { echo "fuzz: $build/config.h missing: run configure first" >&2; exit 99; }
mkdir -p "$out/obj" "$src/tests/fuzz/crashes"

flags=(-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer-no-link,address,undefined
       -fno-sanitize-recover=undefined -I"$build" -I"$src/lib" -I"$src/src"
       -DFIN_MIGRATIONS_DIR='"/nonexistent"'
       $(pkg-config --cflags libpq hiredis json-c libsodium libcrypto uuid libcurl))
libs=($(pkg-config --libs libpq hiredis json-c libsodium libcrypto uuid libcurl) -lfcgi -lhpdf -lm)

# The library and the front end once, then each target against them.
objs=()
for f in "$src"/lib/*.c "$src"/src/*.c; do
	case $(basename "$f") in main.c|fin-*.c) continue ;; esac
	o=$out/obj/$(basename "${f%.c}").o
	if [ ! -f "$o" ] || [ "$f" -nt "$o" ]; then
		"$cc" "${flags[@]}" -c "$f" -o "$o"
	fi
	objs+=("$o")
done

pass=0 fail=0 n=0
for t in "${targets[@]}"; do
	n=$((n + 1))
	"$cc" "${flags[@]}" -fsanitize=fuzzer "$src/tests/fuzz/$t.c" "${objs[@]}" \
		"${libs[@]}" -o "$out/$t"
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")
	corpus=$src/tests/fuzz/corpus/${t#fuzz_}
	if ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1 \
	    "$out/$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
	    -artifact_prefix="$src/tests/fuzz/crashes/$t-" "$scratch" "$corpus" \
	    >"$out/$t.log" 2>&1; then
		echo "ok $n - $t ($(grep -o 'Done [0-9]* runs' "$out/$t.log" | tail -n 1 || echo 'no count'))"
		pass=$((pass + 1))
	else
		echo "not ok $n - $t: see $out/$t.log"
		tail -n 30 "$out/$t.log" | sed 's/^/#   /'
		fail=$((fail + 1))
	fi
	rm -rf "$scratch"
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
