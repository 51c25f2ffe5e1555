# Sourced by the real-photo study scripts (tools/photo_study.sh, tools/lever_study.sh): QUEUE=a|b splits the
# six classes over two queues that run side by side (one thread each, no run in both); QUEUE=all (default) runs
# them in one queue with JOBS=2. Sets CLASSES (unless given), JOBS and OMP_NUM_THREADS=1.
QUEUE=${QUEUE:-all}
case "$QUEUE" in
  a) export CLASSES=${CLASSES:-"lunar fur fundus"} JOBS=1 ;;
  b) export CLASSES=${CLASSES:-"stars flower rocket"} JOBS=1 ;;
  all) export CLASSES=${CLASSES:-"lunar fur fundus stars flower rocket"} ;;
  *) echo "unknown QUEUE $QUEUE (a, b or all)" >&2; exit 1 ;;
esac
export OMP_NUM_THREADS=1
