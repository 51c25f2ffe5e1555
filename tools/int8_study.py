"""What makes the int8 variant accurate, and what it costs: one row per calibration setting.

For a ``cdo-train`` run: export the fp32 graph once, quantize it with each setting
(:func:`cdo_train.export.precision.quantize_int8`), check every result against fp32
exactly as ``cdo-export --int8`` does (:func:`cdo_train.export.int8_check.check_int8`:
held-out good images and test set), then time fp32 and every int8 file in ONNX
Runtime and OpenVINO, batch 1, all interleaved in one loop (``--threads``, ONNX
Runtime spinning off). Prints a Markdown table; ``--json`` writes the raw figures.

Usage::

    OMP_NUM_THREADS=1 python tools/int8_study.py RUN_DIR [--extra-calib-dir DIR] [--iters 40] [--json OUT]

Settings: ``method[+ends][@N][/uint8][:extra]`` -- calibration method, the end
convolutions kept in fp32, N calibration images, uint8 activations, images from
``--extra-calib-dir`` instead of the run's training images. Each int8 file is
checked with its own re-calibrated thresholds (the export default) and at the
fp32 bundle's thresholds. Memory: ONNX Runtime's percentile/entropy calibrators
keep every activation of every calibration image (about 0.1 GB per 256 px image
for lite0), so use ``minmax`` for many images.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_SETTINGS = ("minmax", "percentile", "entropy", "minmax+ends", "percentile+ends", "minmax@8",
                    "minmax/uint8")


def parse(setting: str) -> dict:
    """``minmax+ends@200/uint8:extra`` -> its parts (suffixes in any order)."""
    import re

    m = re.fullmatch(r"(minmax|percentile|entropy)((?:\+ends|@\d+|/uint8|/int8|:extra)*)", setting)
    if m is None:
        raise SystemExit(f"bad setting {setting!r}: method[+ends][@N][/uint8][:extra]")
    mods = m.group(2)
    n = re.search(r"@(\d+)", mods)
    return {"name": setting, "method": m.group(1), "keep_ends": "+ends" in mods, "n": int(n.group(1)) if n else 64,
            "activations": "uint8" if "/uint8" in mods else "int8", "extra": ":extra" in mods}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--settings", nargs="*", default=list(DEFAULT_SETTINGS))
    p.add_argument("--extra-calib-dir", type=Path, default=None, help="more good images (setting suffix ':extra')")
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)

    import onnx

    from cdo_deploy.backends import create_backend
    from cdo_train.export.graph import export_onnx
    from cdo_train.export.int8_check import check_int8
    from cdo_train.export.precision import quantize_int8
    from cdo_train.export.run_inputs import good_images, load_split, read_run_info, run_splits
    from cdo_train.export.verify import onnx_session, run_onnx
    from cdo_train.training.saved_model import load_model

    model = load_model(a.run)
    info = read_run_info(a.run)
    size = model.head.image_size[0]
    splits = run_splits(info)
    hold_imgs, _, _, hold_names = load_split(splits.holdout, size)
    test = load_split(splits.test, size)
    tmp = Path(tempfile.mkdtemp(prefix="int8_study_"))
    fp32_path = tmp / "fp32.onnx"
    onnx.save(export_onnx(model, 17, None), str(fp32_path))

    def runner(path: Path):
        sess = onnx_session(str(path))
        return lambda x: tuple(run_onnx(sess, x, batch_size=len(x)))

    fp32 = runner(fp32_path)
    files, rows = {"fp32": fp32_path}, []
    for setting in a.settings:
        s = parse(setting)
        if s["extra"] and a.extra_calib_dir is None:
            raise SystemExit(f"{setting}: needs --extra-calib-dir")
        calib, _ = good_images(info, size, s["n"], a.extra_calib_dir if s["extra"] else None)
        out = tmp / f"int8_{len(files)}.onnx"
        t = time.perf_counter()
        quantize_int8(fp32_path, out, calib, s["method"], s["keep_ends"], s["activations"])
        seconds = time.perf_counter() - t
        int8 = runner(out)
        thr = info.calibration.get("image_threshold")
        check = check_int8(fp32, int8, thr, (hold_imgs, hold_names), test)
        at_bundle = check_int8(fp32, int8, thr, (hold_imgs, hold_names), test, own_thresholds=False)
        files[setting] = out
        rows.append({"setting": setting, "calibration_images": len(calib), "quantize_s": round(seconds, 1),
                     "passed": check.passed, "reasons": list(check.reasons), "holdout": check.holdout,
                     "test": check.test, "thresholds": check.thresholds,
                     "bundle_thresholds": {"passed": at_bundle.passed, "holdout_flips": at_bundle.holdout["flips"],
                                           "test_flips": at_bundle.test["flips"]}})
        print(f"{setting}: {check.summary()} | at the fp32 thresholds: {at_bundle.summary()}", flush=True)

    # latency: every file in both runtimes, batch 1, interleaved
    x = np.ascontiguousarray(test[0][:1])
    bes = {(name, rt): create_backend(rt, path, "cpu", 1, threads=a.threads)
           for name, path in files.items() for rt in ("onnxruntime", "openvino")}
    times: dict = {k: [] for k in bes}
    for i in range(a.iters + 3):
        keys = list(bes)
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            ms = bes[k].infer(x).ms
            if i >= 3:
                times[k].append(ms)
    p50 = {k: float(np.median(v)) for k, v in times.items()}
    for row in [{"setting": "fp32"}] + rows:
        row["ort_ms"] = round(p50[(row["setting"], "onnxruntime")], 2)
        row["ov_ms"] = round(p50[(row["setting"], "openvino")], 2)
    ref_ort, ref_ov = p50[("fp32", "onnxruntime")], p50[("fp32", "openvino")]
    print(f"\nrun {a.run}; latency: batch 1, p50 of {a.iters} interleaved runs, {a.threads} threads, "
          f"ORT fp32 {ref_ort:.1f} ms, OpenVINO fp32 {ref_ov:.1f} ms\n")
    print("| setting | calib imgs | Δ image AUROC | Δ pixel AUROC | Δ AUPRO | flips test / held-out, fp32 thresholds "
          "| flips test / held-out, own thresholds | held-out max Δscore | check | ORT ms (×fp32) | OpenVINO ms (×fp32) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = r["test"]["deltas"]
        f = lambda v: "-" if v is None else f"{v:+.2f}"  # noqa: E731
        print(f"| {r['setting']} | {r['calibration_images']} | {f(d['image_auroc'])} | {f(d['pixel_auroc'])} | "
              f"{f(d['aupro'])} | {r['bundle_thresholds']['test_flips']}/{r['test']['n']} / "
              f"{r['bundle_thresholds']['holdout_flips']}/{r['holdout']['n']} | "
              f"{r['test']['flips']}/{r['test']['n']} / {r['holdout']['flips']}/{r['holdout']['n']} | "
              f"{r['holdout']['score_max_abs_delta']:.3f} | {'pass' if r['passed'] else 'FAIL'} | "
              f"{r['ort_ms']:.1f} ({r['ort_ms'] / ref_ort:.2f}) | {r['ov_ms']:.1f} ({r['ov_ms'] / ref_ov:.2f}) |")
    if a.json is not None:
        a.json.write_text(json.dumps({"run": a.run, "threads": a.threads, "iters": a.iters,
                                      "fp32_ms": {"onnxruntime": ref_ort, "openvino": ref_ov}, "rows": rows},
                                     indent=2) + "\n")


if __name__ == "__main__":
    main()
