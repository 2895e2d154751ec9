#!/usr/bin/env bash
# Every run of the committed studies, resumable: run it again after any interruption and
# finished members are skipped, unfinished ones continue from their last epoch.
#   bash results/run_study.sh              # all studies, one member at a time
#   bash results/run_study.sh --jobs 2     # two members at once (one thread each)
#   bash results/run_study.sh --dry-run    # list every member and its status; trains nothing
# Offline, the data come from ../shared/data (or set NORMBENCH_DATA_DIR yourself); the
# small-batch and JPEG-cost studies name ../shared/data/cifar10_original_subset*.npz in
# their configs (see each config's header for a download-based variant).
set -euo pipefail
cd "$(dirname "$0")/.."
export NORMBENCH_DATA_DIR="${NORMBENCH_DATA_DIR:-../shared/data}"
NORMBENCH="${NORMBENCH:-normbench}"
for study in imdb cifar10 cifar10_batch_size cifar10_small_batch cifar10_jpeg_cost; do
  echo "== configs/study/$study.yaml"
  "$NORMBENCH" sweep "configs/study/$study.yaml" "$@"
done
