"""The concurrent inspection pipeline behind ``cdo-inspect``.

Stages, each in its own thread(s), joined by bounded queues so memory stays
bounded and I/O never stalls the accelerator::

    source --q_acq--> pre-processing x workers --q_pre--> inference --q_post--> output
    (read/grab)       (decode, resize, RGB)               (micro-batch)         (post-process, sinks)

* Inference gathers up to ``max_batch`` images, waiting at most
  ``max_wait_ms`` after the first one.
* A live source (camera, network stream) puts into a drop-oldest queue: when
  inference falls behind, the oldest frames are dropped and counted. File and
  video-file sources block instead and never drop.
* Results leave in acquisition order (a reorder buffer after the parallel
  pre-processing), so a reject gate downstream can rely on the sequence.
* An image that cannot be read or decoded becomes an error record (and is
  moved to ``quarantine/`` by the route sink); the run goes on.
* Output (:mod:`cdo_deploy.output`): the results ready at a time are appended
  to ``results.jsonl`` and fsynced as one group before any other sink sees
  them; a secondary sink that fails is counted (``sink_errors``) and never
  stops the run or another sink.
* ``stop`` (set by SIGINT/SIGTERM in the CLI) ends acquisition; everything
  already acquired is finished and written, then the sinks are flushed and
  closed. An exception in any stage (a bug, the backend failing, or
  ``results.jsonl`` that cannot be written) stops the run and is re-raised;
  nothing is recorded for the results that failed, so a restart processes
  them again.

Example:
    >>> pipe = Pipeline(inspector, source, [JsonlSink("out/results.jsonl")])  # doctest: +SKIP
    >>> summary = pipe.run(threading.Event())                                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pydantic import Field

import cv2
import numpy as np

from .drift import DriftMonitor
from .errors import CdoError
from .schema import Float, Int, Schema
from .inspector import Inspector
from .output import OutputStage
from .preprocess import decode_image
from .results import Prediction, StageTimes, record_id
from .sinks.base import GROUP_MAX, Sink
from .sources.base import Item, Source
from .status import RunStats, Summary

__all__ = ["DEFAULT_MAX_BATCH", "DropOldestQueue", "Pipeline", "PipelineConfig"]

log = logging.getLogger(__name__)

_END = object()


#: the line's micro-batch limit (``cdo-inspect --max-batch``): small, so a part waits little for others
DEFAULT_MAX_BATCH = 8


class PipelineConfig(Schema):
    """Concurrency settings: declared once here, and ``cdo-inspect``'s options of the same names are
    these fields (:class:`cdo_deploy.inspection.InspectConfig`)."""

    max_batch: Int = Field(DEFAULT_MAX_BATCH, ge=1, description="Micro-batch size limit: the largest inference "
                           "batch the line gathers.")
    max_wait_ms: Float = Field(5.0, ge=0, description="Longest wait for a micro-batch to fill after its first "
                               "image, ms.")
    queue_size: Int = Field(64, ge=1, description="Capacity of each stage queue (live sources drop the oldest "
                            "frames beyond it).")
    workers: Int = Field(2, ge=1, description="Pre-processing threads (decode + resize).")


class DropOldestQueue:
    """A bounded FIFO; when full, ``put`` drops the oldest item (``drop=True``) or blocks.

    The end marker is never dropped. ``dropped`` counts dropped items.
    """

    def __init__(self, maxsize: int, drop: bool) -> None:
        self.maxsize, self.drop = maxsize, drop
        self.dropped = 0
        self._taken = 0
        self._items: deque[Any] = deque()
        self._cond = threading.Condition(threading.RLock())

    def put(self, item: Any, force: bool = False) -> None:
        with self._cond:
            while len(self._items) >= self.maxsize and not force:
                if self.drop:
                    victim = next((i for i, x in enumerate(self._items) if x is not _END), None)
                    if victim is not None:
                        del self._items[victim]
                        self.dropped += 1
                        continue
                self._cond.wait()
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Any:
        """Next item; raises ``queue.Empty`` after ``timeout`` seconds."""
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise queue.Empty
                self._cond.wait(left)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def get_numbered(self) -> tuple[int, Any]:
        """Next item and its 0-based number among the items taken (end markers not counted)."""
        with self._cond:
            item = self.get()
            n = self._taken
            if item is not _END:
                self._taken += 1
            return n, item

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _Work:
    seq: int
    item: Item
    x: np.ndarray | None = None
    shape: tuple[int, int] = (0, 0)
    image: np.ndarray | None = None
    times: StageTimes = field(default_factory=StageTimes)
    error: str | None = None
    amap: np.ndarray | None = None
    score: float = float("nan")
    batch: int = 0


class Pipeline:
    """Runs one source through an inspector into sinks.

    Args:
        inspector: loaded bundle + backend + thresholds.
        source: an opened source.
        sinks: the primary ``JsonlSink`` and the secondary sinks, in the order these are called.
        config: concurrency settings.
        drift: fed the scores of OK parts; a change of its state is logged and sent to the sinks as a
            ``drift`` event (MQTT publishes it). It never changes a decision.
    """

    def __init__(self, inspector: Inspector, source: Source, sinks: Sequence[Sink],
                 config: PipelineConfig = PipelineConfig(), drift: DriftMonitor | None = None) -> None:
        self.inspector, self.source, self.sinks, self.config = inspector, source, list(sinks), config
        self.max_batch = min(config.max_batch, inspector.max_batch)
        self.keep_images = any(s.needs_image for s in self.sinks)
        self.output = OutputStage(self.sinks)
        self.stats = RunStats(drift=drift)
        self.q_acq = DropOldestQueue(config.queue_size, drop=source.live)
        self.q_pre: queue.Queue[Any] = queue.Queue(config.queue_size)
        self.q_post: queue.Queue[Any] = queue.Queue(config.queue_size)
        self._failure: BaseException | None = None
        self._aborting = False

    @property
    def failure(self) -> BaseException | None:
        """The exception that stopped the run (re-raised by :meth:`run`), if any."""
        return self._failure

    # -- stages -------------------------------------------------------------
    def _acquire(self, stop: threading.Event) -> None:
        try:
            self.source.run(self.q_acq.put, stop)
        finally:
            for _ in range(self.config.workers):
                self.q_acq.put(_END, force=True)

    def _preprocess(self) -> None:
        while True:
            seq, item = self.q_acq.get_numbered()
            if item is _END:
                self.q_pre.put(_END)
                return
            if self._aborting:
                continue  # the run failed: nothing more is recorded; a restart inspects it
            work = _Work(seq, item, times=StageTimes(read=item.read_ms), error=item.error)
            if work.error is None:
                try:
                    image = item.image
                    if image is None:
                        t0 = time.perf_counter()
                        image = decode_image(item.data or b"", item.source_id)
                        work.times.read += (time.perf_counter() - t0) * 1e3
                    work.x, work.times.pre = self.inspector.preprocess(image)
                    work.shape = (int(image.shape[0]), int(image.shape[1]))
                    work.image = image if self.keep_images else None
                except CdoError as e:
                    work.error = str(e)
                except cv2.error as e:
                    work.error = f"OpenCV cannot process this image: {e.err or e}"
            item.data = None  # free the encoded bytes early
            if not self.keep_images:
                item.image = None
            self.q_pre.put(work)

    def _infer(self) -> None:
        waiting = self.config.workers
        max_wait = self.config.max_wait_ms / 1e3
        while waiting:
            first = self.q_pre.get()
            if first is _END:
                waiting -= 1
                continue
            if first.error is not None:
                self.q_post.put(first)
                continue
            batch = [first]
            deadline = time.perf_counter() + max_wait
            while len(batch) < self.max_batch and waiting:
                try:
                    w = self.q_pre.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if w is _END:
                    waiting -= 1
                elif w.error is not None:
                    self.q_post.put(w)
                else:
                    batch.append(w)
            if self._aborting:
                continue
            maps, scores, ms = self.inspector.infer(np.stack([w.x for w in batch]))
            for i, w in enumerate(batch):
                w.amap, w.score, w.batch, w.x = maps[i], float(scores[i]), len(batch), None
                w.times.infer = ms
                self.q_post.put(w)
        self.q_post.put(_END)

    def _output(self) -> None:
        # workers finish out of order; results leave in acquisition order (reorder buffer), in groups:
        # whatever is ready is recorded with one fsync before the other sinks see it
        pending: dict[int, _Work] = {}
        next_seq = 0
        ended = False
        while not ended:
            ready = [self.q_post.get()]
            while len(ready) < GROUP_MAX:
                try:
                    ready.append(self.q_post.get_nowait())
                except queue.Empty:
                    break
            group: list[_Work] = []
            for w in ready:
                if w is _END:
                    ended = True
                elif not self._aborting:
                    pending[w.seq] = w
            while next_seq in pending:
                group.append(pending.pop(next_seq))
                next_seq += 1
            if ended:
                group += [pending.pop(seq) for seq in sorted(pending)]
            for start in range(0, len(group), GROUP_MAX):
                self._emit(group[start:start + GROUP_MAX])

    def _emit(self, works: list[_Work]) -> None:
        if not works:
            return
        group = [(self._prediction(w), w.item, w.image) for w in works]
        self.output.emit(group)
        for pred, _, _ in group:
            change = self.stats.record(pred)
            if change is not None:
                self._drift_event(change, pred)

    def _drift_event(self, change: tuple[str, str], pred: Prediction) -> None:
        assert self.stats.drift is not None  # a change comes only from a drift monitor
        st = self.stats.drift.status()
        level = logging.WARNING if change[1] in ("warn", "alarm") else logging.INFO
        log.log(level, "drift %s -> %s: good parts' scores moved %+.2f calibration std (window of %d OK parts, "
                "mean %.4g vs %.4g); decisions are unchanged", change[0], change[1], st.shift or 0.0, st.parts,
                st.window_mean or 0.0, st.ref_mean or 0.0)
        self.output.event("drift", {"previous": change[0], **st.to_dict(), "time": pred.to_record()["time"],
                                    "source": pred.source, "model_sha256": pred.model_sha256 or None})

    def _prediction(self, w: _Work) -> Prediction:
        item = w.item
        if w.error is not None:
            pred = Prediction.failed(item.source_id, w.error, frame=item.frame, time=item.t_acquired,
                                     times=w.times)
            log.warning("%s: %s", item.source_id, w.error)
        else:
            assert w.amap is not None  # set by the inference stage for every non-error item
            pred = self.inspector.postprocess(w.amap, w.score, w.shape, source=item.source_id, times=w.times)
            pred.frame, pred.batch, pred.time = item.frame, w.batch, item.t_acquired
        pred.source_meta = dict(item.source_meta)
        thr = self.inspector.thresholds
        pred.image_threshold, pred.pixel_threshold = thr.image, thr.pixel
        pred.model_sha256 = self.inspector.model_sha256
        key = f"{item.source_id}@{item.t_acquired:.6f}" if self.source.live else item.source_id
        pred.id = record_id(pred.model_sha256, thr.image, thr.pixel, key)
        t = pred.times
        t.total = (time.perf_counter() - item.t_mono) * 1e3
        t.queue = max(0.0, t.total - (t.read + t.pre + t.infer + t.post))
        return pred

    # -- orchestration ------------------------------------------------------
    def _guard(self, fn: Callable[..., None], stop: threading.Event, *args: Any) -> Callable[[], None]:
        def target() -> None:
            try:
                fn(*args)
            except BaseException as e:  # re-raised in the main thread
                if self._failure is None:
                    self._failure = e
                stop.set()

        return target

    def run(self, stop: threading.Event, on_status: Callable[[Summary], None] | None = None,
            status_every_s: float = 1.0) -> Summary:
        """Run until the source is exhausted or ``stop`` is set; flush and close the sinks.

        Args:
            stop: set it (e.g. from a signal handler) to finish in-flight work and return.
            on_status: called with a ``Summary`` every ``status_every_s`` seconds.

        Returns:
            The final summary (FPS over the whole run).

        Raises:
            CdoError: a sink could not be opened, or a stage raised one.
        """
        try:
            self.output.open()
            threads = [threading.Thread(target=self._guard(self._acquire, stop, stop), name="cdo-acquire", daemon=True)]
            threads += [threading.Thread(target=self._guard(self._preprocess, stop), name=f"cdo-pre{i}", daemon=True)
                        for i in range(self.config.workers)]
            threads += [threading.Thread(target=self._guard(self._infer, stop), name="cdo-infer", daemon=True),
                        threading.Thread(target=self._guard(self._output, stop), name="cdo-output", daemon=True)]
            log.info("pipeline: %s, batch <= %d within %.1f ms, %d pre-processing workers",
                     self.source.describe(), self.max_batch, self.config.max_wait_ms, self.config.workers)
            for t in threads:
                t.start()
            next_status = time.monotonic() + status_every_s
            while any(t.is_alive() for t in threads) and self._failure is None:
                threads[-1].join(0.05)
                self._sync_counters()
                if on_status is not None and time.monotonic() >= next_status:
                    on_status(self.stats.summary())
                    next_status = time.monotonic() + status_every_s
            if self._failure is not None:
                self._abort(threads)
                raise self._failure
        finally:
            self.source.close()
            self.output.close()
        self._sync_counters()
        return self.stats.final_summary()

    def _abort(self, threads: list[threading.Thread], timeout_s: float = 10.0) -> None:
        """After a failure: let every stage drop its work and end (a stage may be dead), then join them.

        So that no thread is still inside the backend when the caller closes it.
        """
        self._aborting = True
        pre, infer, out = threads[1:-2], threads[-2], threads[-1]
        ended = False
        deadline = time.monotonic() + timeout_s
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            for get, consumers in ((self.q_acq.get, pre), (self.q_pre.get, [infer]), (self.q_post.get, [out])):
                while not any(t.is_alive() for t in consumers):
                    try:
                        get(timeout=0)
                    except queue.Empty:
                        break
            if not infer.is_alive() and not any(t.is_alive() for t in pre) and out.is_alive() and not ended:
                self.q_post.put(_END)
                ended = True
            time.sleep(0.01)
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            log.warning("after the failure, %s did not end within %.0f s", ", ".join(alive), timeout_s)

    def _sync_counters(self) -> None:
        self.stats.sink_errors = dict(self.output.errors.counts)
        self.stats.sink_status = self.output.status()
        self.stats.dropped = self.q_acq.dropped + self.source.dropped
        self.stats.missed = self.source.missed
        self.stats.skipped = self.source.skipped
        self.stats.reconnects = self.source.reconnects
