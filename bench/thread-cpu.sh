#!/usr/bin/env bash
# Where the CPU goes while a benchmark runs: how busy the whole machine was and the busiest threads of the given
# processes, over one window, both read at the same two instants (docs/benchmarks.md, item 25 (a)).
#   bench/thread-cpu.sh SECONDS PID...     e.g. bench/thread-cpu.sh 5 "$(pgrep -f uffdemu-server)" "$(pgrep -f uffdemu-bench)"
# Reading every thread's /proc stat takes a while, so the busiest threads are picked first (over one second) and
# only they are read at the window's ends: a window of SECONDS, not SECONDS plus the time of the reads.
# METRICS=http://127.0.0.1:8080/actuator/prometheus (the server's) adds its faults/s over the same window
# (uffdemu_faults_total), so that a window can be told apart from the setup and verify passes between rounds.
set -euo pipefail
usage() {
  echo "usage: $0 SECONDS PID...   (SECONDS: a whole number, at least 1)" >&2
  exit 2
}
[ $# -ge 2 ] || usage
[[ $1 =~ ^[1-9][0-9]*$ ]] || usage
window=$1
shift
# each argument may hold several pids (pgrep's output)
pids=$(echo "$@")
[ -n "$pids" ] || { echo "$0: no pid given (did pgrep find nothing?)" >&2; exit 1; }
for p in $pids; do
  if ! [[ $p =~ ^[0-9]+$ ]] || [ ! -d "/proc/$p/task" ]; then
    echo "$0: no process $p" >&2
    exit 1
  fi
done
hz=$(getconf CLK_TCK)
# utime + stime of a thread, in clock ticks (fields 14 and 15; the name in parentheses may hold spaces); 0 once
# the thread has gone
ticks() {
  local l
  read -r l 2>/dev/null < "$1" || { echo 0; return; }
  set -- ${l##*) }
  echo $(( ${12} + ${13} ))
}
declare -A t0
for p in $pids; do
  for t in /proc/"$p"/task/*; do t0[$t]=$(ticks "$t/stat"); done
done
sleep 1
busiest=$(for t in "${!t0[@]}"; do echo "$(( $(ticks "$t/stat") - ${t0[$t]} )) $t"; done | sort -nr \
  | awk 'NR <= 8 {print $2}')
faults() {
  if [ -n "${METRICS:-}" ]; then
    curl -fsS --max-time 5 "$METRICS" | awk '/^uffdemu_faults_total/ {s += $2} END {printf "%d\n", s}'
  else
    echo 0
  fi
}
snap() {
  date +%s%N
  faults
  head -n1 /proc/stat | cut -d' ' -f2-
  for t in $busiest; do ticks "$t/stat"; done
}
a=($(snap)); sleep "$window"; b=($(snap))
ms=$(( (b[0] - a[0]) / 1000000 ))
# a[0] the time, a[1] the server's faults, then /proc/stat's cpu line (all processors): user nice system idle
# iowait irq softirq steal (guest time is counted in user), then the busiest threads' ticks
total=0
for i in 2 3 4 5 6 7 8 9; do total=$(( total + b[i] - a[i] )); done
idle=$(( b[5] - a[5] + b[6] - a[6] ))
steal=$(( b[9] - a[9] ))
busy=$(( (1000 * (total - idle) / total + 5) / 10 ))
echo "window ${ms} ms, $(grep -c '^cpu[0-9]' /proc/stat) processors: machine busy ${busy}% (steal" \
  "$(( 100 * steal / total ))%), idle $(( 100 - busy ))%"
if [ -n "${METRICS:-}" ]; then
  echo "server: $(( (b[1] - a[1]) * 1000 / ms )) faults/s"
fi
i=$(( ${#a[@]} - $(echo "$busiest" | wc -w) ))
for t in $busiest; do
  used=$(( b[i] - a[i] ))
  pid=${t#/proc/}; pid=${pid%%/*}
  echo "  $(( 100 * used * 1000 / hz / ms ))% of a core  $(tr -d '\n' 2>/dev/null < "$t/comm") (pid ${pid}, tid ${t##*/})"
  i=$(( i + 1 ))
done | sort -nr
