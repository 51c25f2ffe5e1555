#!/usr/bin/env bash
# Hard validation suite (docs/results/hard_surfaces.md): photographed-looking procedural surfaces with subtle defects,
# data in result/hard_data, runs in result/hard/<experiment>/<class>/seed_<n>. Options and experiments:
# tools/suite.sh (this is SUITE=hard of it).
SUITE=hard exec bash "$(dirname "$0")/suite.sh" "$@"
