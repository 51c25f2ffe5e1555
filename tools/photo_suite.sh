#!/usr/bin/env bash
# Photo suite (docs/results/photo_suite.md): real photographs from installed packages with subtle defects, data in
# result/photo_data, runs in result/photo/<experiment>/<class>/seed_<n>. Options and experiments:
# tools/suite.sh (this is SUITE=photo of it).
#
#   tools/photo_suite.sh                                          # data + the default runs, 3 seeds
#   EXPERIMENTS="default steps250 steps500 levels2 light knn" SEEDS=1 tools/photo_suite.sh
#   EXPERIMENTS="cur-none cur-linear" CLASSES="fur stars" tools/photo_suite.sh
SUITE=photo exec bash "$(dirname "$0")/suite.sh" "$@"
