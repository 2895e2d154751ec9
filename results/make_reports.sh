#!/usr/bin/env bash
# One self-contained HTML page per reference study (normbench report; docs/report.md),
# linked from the README's claims table. Regenerate after any study changes:
#   bash results/make_reports.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NB=${NORMBENCH:-normbench}
r() { study=$1; shift; $NB report "results/study/$study" -o "results/reports/$study.html" "$@"; }
r study_imdb
r study_imdb_recurrent
r study_imdb_tuned
r study_imdb_bf16
r study_cifar10
r study_cifar10_bs
r study_cifar10_jpeg_cost
r study_cifar10_lr_tolerance --within train.learning_rate
r study_cifar10_small_batch --within train.batch_size
r study_cifar10_tuned
r study_cifar10_bf16
r study_cifar10_fused_bn
r study_own_saved_functional
r study_tabular_breast_cancer --within train.optimizer --within model.norm
r study_tabular_salary --within train.optimizer --within model.norm
r study_tabular_wine --within train.optimizer --within model.norm
r study_imdb_transformer
r study_imdb_transformer_warmup --within model.params.norm_placement
r study_imdb_transformer_post
r study_cifar10_recipe
