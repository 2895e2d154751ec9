#!/usr/bin/env bash
# Whole-process figures quoted in docs/ and benchmarks/RESULTS.md that are not in
# step_time.py's CSVs. Each is timed from outside with benchmarks/alternate.py (Python
# standard library: the commands alternated A B A B ..., wall, CPU and peak memory per
# run, ratios to the first command) or read back with normbench compare. Run from
# anywhere, with nothing else running on the machine:
#   bash benchmarks/whole_process.sh jobs         # docs/sweeps.md: --jobs 1 vs --jobs 2
#   bash benchmarks/whole_process.sh determinism  # docs/sweeps.md: cost of train.deterministic
#   bash benchmarks/whole_process.sh unroll       # RESULTS.md: smoke config, unroll false vs true
#   bash benchmarks/whole_process.sh jax-unroll   # RESULTS.md: jax without and with unroll
#   bash benchmarks/whole_process.sh e2e-imdb     # RESULTS.md, issue 14: real IMDB end to end,
#                                                 # plain script vs normbench vs normbench on jax
#                                                 # (about 15 minutes on 2 cores)
#   bash benchmarks/whole_process.sh help         # RESULTS.md "Start-up": normbench --help
# Each writes what it prints to $OUT/whole_process_<name>.txt, and the timed ones one CSV
# row per run to $OUT/whole_process_<name>.csv (e2e-imdb: to $OUT/e2e_imdb_3way.csv).
# Environment: NORMBENCH (default normbench), PYTHON (default python), DATA (the folder
# holding imdb.npz, default ../shared/data), OUT (default benchmarks/results), QUICK (set to
# 1: a smoke check of the commands, not a figure: one round, no warm-up, every normbench
# run with --smoke; e2e-imdb then runs on any imdb.npz of the source layout, e.g. a tiny
# generated one, as tests/test_benchmark_smoke.py does).
set -euo pipefail
cd "$(dirname "$0")/.."
NB="${NORMBENCH:-normbench}"
PY="${PYTHON:-python}"
DATA="${DATA:-../shared/data}"
OUT="${OUT:-benchmarks/results}"
QUICK="${QUICK:-}"
smoke="${QUICK:+--smoke}"  # added to every normbench run in the quick mode
names="jobs determinism unroll jax-unroll e2e-imdb help"
what="${1:?name one of: $names}"
case " $names " in
  *" $what "*) ;;
  *) echo "Error: $what: unknown figure; name one of: $names" >&2; exit 2 ;;
esac
if [ "$what" = e2e-imdb ] && [ ! -f "$DATA/imdb.npz" ]; then
  echo "Error: DATA=$DATA: no imdb.npz there; set DATA to the folder that holds it" >&2; exit 2
fi
mkdir -p "$OUT"
out="$OUT/whole_process_${what}.txt"
tmp="$(mktemp -d)"
npz="$(printf %q "$DATA/imdb.npz")"  # quoted for alternate.py's shell-like splitting
trap 'rm -rf "$tmp"' EXIT
alternate() { "$PY" benchmarks/alternate.py "$@"; }
rounds() { if [ -n "$QUICK" ]; then echo "-n 1 --warmup 0"; else echo "$1"; fi; }  # "-n N --warmup W", or the quick one
case "$what" in
  jobs)
    # the first command is the baseline: ratio = --jobs 2 wall / --jobs 1 wall
    passes=("" "--smoke")
    if [ -n "$QUICK" ]; then passes=("--smoke"); fi
    for extra in "${passes[@]}"; do
      alternate $(rounds "-n 2 --warmup 0") --timeout 900 --out "$OUT/whole_process_jobs${extra:+_smoke}.csv" \
        --cmd jobs1 "sh -c 'rm -rf $tmp/j1 && exec $NB sweep configs/smoke/imdb_ln.yaml --grid model.norm=batch,layer,none --grid seed=0,1 --output $tmp/j1 --jobs 1 $extra'" \
        --cmd jobs2 "sh -c 'rm -rf $tmp/j2 && exec $NB sweep configs/smoke/imdb_ln.yaml --grid model.norm=batch,layer,none --grid seed=0,1 --output $tmp/j2 --jobs 2 $extra'"
    done ;;
  determinism)
    for det in true false; do
      for i in $(if [ -n "$QUICK" ]; then echo 1; else echo 1 2 3; fi); do
        $NB run configs/smoke/cifar10_bn.yaml -q --set train.deterministic=$det --set output.dir="$tmp/det" $smoke
      done
    done
    $NB compare "$tmp/det" --metric ms_per_step ;;
  unroll)
    alternate $(rounds "-n 3 --warmup 1") --timeout 900 --out "$OUT/whole_process_unroll.csv" \
      --cmd rolled "$NB run configs/smoke/imdb_ln.yaml -q --set model.unroll=false --set output.dir=$tmp/r $smoke" \
      --cmd unrolled "$NB run configs/smoke/imdb_ln.yaml -q --set model.unroll=true --set output.dir=$tmp/u $smoke" ;;
  jax-unroll)
    alternate -n 1 --warmup 0 --timeout 900 --out "$OUT/whole_process_jax-unroll.csv" \
      --cmd jax "$NB run configs/smoke/imdb_ln.yaml -q --set train.backend=jax --set model.unroll=false --set output.dir=$tmp/j $smoke" \
      --cmd jax-unrolled "$NB run configs/smoke/imdb_ln.yaml -q --set train.backend=jax --set model.unroll=true --set output.dir=$tmp/ju $smoke"
    $NB compare "$tmp/ju" "$tmp/j" --metric ms_per_step ;;
  e2e-imdb)
    # issue 14's comparison, one call: the tutorial's size (5 epochs, 20,000 / 5,000 /
    # 25,000 reviews) on the real imdb.npz. The warm-up round is not counted; it also fills
    # normbench's data cache, as any first run does, so the counted runs read from it.
    alternate $(rounds "-n 3 --warmup 1") --timeout 900 --out "$OUT/e2e_imdb_3way.csv" --log "$tmp/logs" \
      --cmd plain "$PY benchmarks/plain_imdb.py $npz" \
      --cmd normbench "$NB run configs/imdb_ln.yaml -q --set data.path=$npz --set output.dir=$tmp/d $smoke" \
      --cmd normbench-jax "$NB run configs/imdb_ln.yaml -q --set data.path=$npz --set output.dir=$tmp/j --set train.backend=jax $smoke"
    grep -H test_accuracy "$tmp"/logs/plain.*.log || true  # the plain script's own test accuracy, per run
    $NB compare "$tmp/d" "$tmp/j" --metric test_accuracy ;;  # $NB unquoted: it may be "python -m normbench"
  help)
    alternate $(rounds "-n 5 --warmup 1") --timeout 60 --out "$OUT/whole_process_help.csv" --cmd help "$NB --help" ;;
esac 2>&1 | tee "$out"
