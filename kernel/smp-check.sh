#!/bin/sh
# Boots the release kernel on microvm and q35 with 1, 2, 3, 4 and 8 vCPUs
# (multi-threaded TCG) and checks the SMP bring-up and IPI accounting from
# the serial report, until the harness's integration tests take this over:
# - hello: exit status 33, `begin cpus=N`, one `cpu.online` per CPU;
# - ipi-pingpong on 2 and 4 vCPUs (pairs=all): exit 33, and for every kind
#   and every (from, to) pair, ipi.pair.sent == ipi.pair.received, and the
#   machine totals equal too;
# - fault kind=pagefault: exit 37 and a `panic` record naming #PF and RIP.
# Usage: kernel/smp-check.sh   (build first: cd kernel && cargo build --release)
set -u
dir=$(dirname "$0")
fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
check() { # description, condition-result
    if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}
for machine in microvm q35; do
    for n in 1 2 3 4 8; do
        "$dir/run-qemu.sh" "$machine" "$n" "workload=hello" >"$log" 2>&1
        status=$?
        begin=$(grep -c "^@pl begin .* cpus=$n " "$log")
        online=$(grep -c "^@pl metric name=cpu.online value=1 unit=count cpu=" "$log")
        [ "$status" = 33 ] && [ "$begin" = 1 ] && [ "$online" = "$n" ]
        check "$machine -smp $n hello: status=$status begin.cpus=$n:$begin online=$online" $?
    done
    for n in 2 4; do
        "$dir/run-qemu.sh" "$machine" "$n" "workload=ipi-pingpong pairs=all rounds=500" >"$log" 2>&1
        status=$?
        # Every sent/received metric, keyed by kind and scope, must pair up.
        mismatches=$(awk '
            # Per-CPU rows are not comparable (a CPU sends to others); pairs
            # and machine totals are.
            /^@pl metric name=ipi\.(pair\.)?(sent|received)\./ && $6 !~ /^cpu=/ {
                split($3, n, "="); split($4, v, "=")
                key = n[2]; sub(/\.(sent|received)\./, ".X.", key)
                scope = $6 " " $7
                if (n[2] ~ /\.sent\./) s[key " " scope] += v[2]; else r[key " " scope] += v[2]
                seen[key " " scope] = 1
            }
            END { bad = 0; for (k in seen) if (s[k] != r[k]) { print "mismatch " k ": " s[k] " vs " r[k] > "/dev/stderr"; bad++ }; print bad }' "$log")
        pairs=$(grep -c "^@pl metric name=ipi.pair.sent.other" "$log")
        median=$(sed -n 's/^@pl metric name=pingpong.rtt.median value=\([0-9]*\) unit=cycles$/\1/p' "$log")
        median_ns=$(sed -n 's/^@pl metric name=pingpong.rtt.median_ns value=\([0-9]*\) unit=ns$/\1/p' "$log")
        [ "$status" = 33 ] && [ "$mismatches" = 0 ] && [ "$pairs" = $((n * (n - 1))) ]
        check "$machine -smp $n ipi-pingpong: status=$status sent!=received:$mismatches pairs=$pairs median=${median}cyc/${median_ns}ns" $?
    done
    "$dir/run-qemu.sh" "$machine" 2 "workload=fault kind=pagefault" >"$log" 2>&1
    status=$?
    grep -q "^@pl panic cpu=0 at=- msg=exception 14 (#PF) error=0x0 rip=0xffffffff8" "$log"
    found=$?
    [ "$status" = 37 ] && [ "$found" = 0 ]
    check "$machine fault: status=$status panic-record=$found" $?
done
exit $fail
