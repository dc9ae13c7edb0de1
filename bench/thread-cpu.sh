#!/usr/bin/env bash
# Where the CPU goes while a benchmark runs: how busy the whole machine was and the busiest threads of the given
# processes, over one window, both read at the same two instants (docs/benchmarks.md, item 25 (a)).
#   bench/thread-cpu.sh SECONDS PID...     e.g. bench/thread-cpu.sh 5 "$(pgrep -f uffdemu-server)" "$(pgrep -f uffdemu-bench)"
# Reading every thread's /proc stat takes a while, so the busiest threads are picked first (over one second) and
# only they are read at the window's ends: a window of SECONDS, not SECONDS plus the time of the reads.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 SECONDS PID..." >&2
  exit 2
fi
window=$1
shift
# each argument may hold several pids (pgrep's output)
pids=$(echo "$@")
for p in $pids; do
  if [ ! -d "/proc/$p/task" ]; then
    echo "$0: no process $p" >&2
    exit 1
  fi
done
hz=$(getconf CLK_TCK)
# utime + stime of a thread, in clock ticks (fields 14 and 15; the name in parentheses may hold spaces)
ticks() {
  local l
  read -r l < "$1" 2>/dev/null || { echo 0; return; }
  set -- ${l##*) }
  echo $(( ${12} + ${13} ))
}
declare -A t0
for p in $pids; do
  for t in /proc/"$p"/task/*; do t0[$t]=$(ticks "$t/stat"); done
done
sleep 1
busiest=$(for t in "${!t0[@]}"; do echo "$(( $(ticks "$t/stat") - ${t0[$t]} )) $t"; done | sort -nr | head -8 | awk '{print $2}')
snap() {
  date +%s%N
  head -n1 /proc/stat | cut -d' ' -f2-
  for t in $busiest; do ticks "$t/stat"; done
}
a=($(snap)); sleep "$window"; b=($(snap))
ms=$(( (b[0] - a[0]) / 1000000 ))
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal ...
total=0
for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
idle=$(( b[4] - a[4] + b[5] - a[5] ))
echo "window ${ms} ms, $(nproc) processors: machine busy $(( 100 * (total - idle) / total ))%, idle $(( 100 * idle / total ))%"
i=$(( ${#a[@]} - $(echo "$busiest" | wc -w) ))
for t in $busiest; do
  used=$(( b[i] - a[i] ))
  pid=${t#/proc/}; pid=${pid%%/*}
  echo "  $(( 100 * used * 1000 / hz / ms ))% of a core  $(tr -d '\n' < "$t/comm" 2>/dev/null) (pid ${pid}, tid ${t##*/})"
  i=$(( i + 1 ))
done | sort -nr
