#!/usr/bin/env bash
# Soak run (not in CI): 20,000 images through the folder watcher with MQTT on, the broker restarted
# twice; checks 0 lost / 0 duplicate records, every MQTT id delivered, peak RSS growth < 10 % from
# the first to the last thousand records. Needs mosquitto and the cdo[deploy] + onnx packages.
# Usage: tools/soak.sh [--images N] [--restarts N] [--work DIR] [--bundle BUNDLE]   (from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
exec python tools/soak.py "$@"
