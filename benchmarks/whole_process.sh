#!/usr/bin/env bash
# Whole-process figures quoted in README.md and benchmarks/RESULTS.md that are not in
# step_time.py's CSVs. Each is timed from outside with farm-bench (/work/.library; any
# tool that times whole commands, e.g. hyperfine, gives the same figures) or read back
# with normbench compare. Run from the repository root, with nothing else running:
#   bash benchmarks/whole_process.sh jobs         # README "Sweeps": --jobs 1 vs --jobs 2
#   bash benchmarks/whole_process.sh determinism  # README: cost of train.deterministic
#   bash benchmarks/whole_process.sh unroll       # RESULTS.md: smoke config, unroll true vs false
#   bash benchmarks/whole_process.sh jax-unroll   # RESULTS.md: jax with and without unroll
# Each writes what it prints to benchmarks/whole_process_<name>.txt as well.
set -euo pipefail
cd "$(dirname "$0")/.."
NB="${NORMBENCH:-normbench}"
what="${1:?name one of: jobs determinism unroll jax-unroll}"
out="benchmarks/whole_process_${what}.txt"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
case "$what" in
  jobs)
    for extra in "" "--smoke"; do
      farm-bench -n 2 --warmup 0 --timeout 900 \
        -- sh -c "rm -rf $tmp/j2 && exec $NB sweep configs/smoke/imdb_ln.yaml --grid model.norm=batch,layer,none --grid seed=0,1 --output $tmp/j2 --jobs 2 $extra" \
        --vs "sh -c 'rm -rf $tmp/j1 && exec $NB sweep configs/smoke/imdb_ln.yaml --grid model.norm=batch,layer,none --grid seed=0,1 --output $tmp/j1 --jobs 1 $extra'"
    done ;;
  determinism)
    for det in true false; do
      for i in 1 2 3; do
        "$NB" run configs/smoke/cifar10_bn.yaml -q --set train.deterministic=$det --set output.dir="$tmp/det"
      done
    done
    "$NB" compare "$tmp/det" --metric ms_per_step ;;
  unroll)
    farm-bench -n 3 --timeout 900 -- "$NB" run configs/smoke/imdb_ln.yaml -q --set model.unroll=true --set output.dir="$tmp/u" \
      --vs "$NB run configs/smoke/imdb_ln.yaml -q --set model.unroll=false --set output.dir=$tmp/r" ;;
  jax-unroll)
    farm-bench -n 1 --warmup 0 --timeout 900 -- "$NB" run configs/smoke/imdb_ln.yaml -q --set train.backend=jax --set model.unroll=true --set output.dir="$tmp/ju" \
      --vs "$NB run configs/smoke/imdb_ln.yaml -q --set train.backend=jax --set model.unroll=false --set output.dir=$tmp/j"
    "$NB" compare "$tmp/ju" "$tmp/j" --metric ms_per_step ;;
  *) echo "unknown figure $what; name one of: jobs determinism unroll jax-unroll" >&2; exit 2 ;;
esac 2>&1 | tee "$out"
