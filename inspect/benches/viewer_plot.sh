#!/usr/bin/env bash
# Times `wandb-inspect plot` of long histories with the release binary and counts its
# instructions (issue 16: a 10M-row, 10-metric history in about a second on 2 cores).
#
#   inspect/benches/viewer_plot.sh [DIR]     (DIR: where the files go, default /tmp/viewer-bench)
#
# Files, written once by the gen_history example (rows as the logger writes them): 100k, 1M and
# 10M rows of 10 metrics (43 MB, 430 MB, 4.4 GB). Wall time is the best of 3 runs (the machine may
# be shared); instructions are counted by cachegrind (--cache-sim=no) on the 100k-row file, whose
# drawing alone (a 10-row file) is printed too.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-/tmp/viewer-bench}
mkdir -p "$dir"
cargo build --release -q -p wandb-inspect --bin wandb-inspect --example gen_history
bin=target/release/wandb-inspect
gen=target/release/examples/gen_history
for rows in 10 100000 1000000 10000000; do
  [ -s "$dir/$rows.wandb" ] || "$gen" "$dir/$rows.wandb" "$rows" 10
done
for rows in 1000000 10000000; do
  cat "$dir/$rows.wandb" > /dev/null   # in the page cache, as a file just written is
  best=
  for _ in 1 2 3; do
    t=$( { /usr/bin/time -f "%e %U %S %M" "$bin" plot "$dir/$rows.wandb" -o "$dir/out.png" ; } 2>&1 | tail -1)
    wall=${t%% *}
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < ${best%% *})}"; then best=$t; fi
  done
  read -r wall user sys rss <<<"$best"
  echo "plot $rows rows x 10 metrics: ${wall} s wall, ${user} s user, ${sys} s sys, ${rss} KB max RSS (best of 3)"
done
if command -v valgrind > /dev/null; then
  for rows in 10 100000; do
    n=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
      "$bin" plot "$dir/$rows.wandb" -o "$dir/out.png" 2>&1 | sed -n 's/.*I *refs: *//p')
    echo "plot $rows rows x 10 metrics: $n instructions"
  done
else
  echo "SKIP instruction counts: valgrind is not installed"
fi
