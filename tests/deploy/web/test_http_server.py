"""``cdo-inspect --http`` as a real subprocess, read with urllib: /metrics, /healthz, token, bind address."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from _live_run import get, live_run  # noqa: F401 - live_run is a fixture
from prometheus_client.parser import text_string_to_metric_families


def _metrics(url: str, token: str | None = None) -> dict[str, dict]:
    status, body, headers = get(url + "metrics", token)
    assert status == 200 and headers["Content-Type"].startswith("text/plain"), body
    out: dict[str, dict] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _listening_on(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":  # LISTEN
                found.add(addr)
    return found


def test_metrics_counters_equal_results_and_default_bind_is_localhost(live_run, records, wait, unused_port):
    run = live_run("--http", unused_port)  # no host: 127.0.0.1
    url = run.wait_url()
    assert url == f"http://127.0.0.1:{unused_port}/"
    assert _listening_on(unused_port) == {"0100007F"}  # 127.0.0.1 only, no wildcard, no IPv6
    status, body, _ = get(url + "healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"

    run.drop("OONOOONNOOOO")
    results = run.out / "results.jsonl"
    assert wait(lambda: len(records(results)) == 12, 30)
    recs = records(results)
    want = {"ok": sum(r["decision"] == "OK" for r in recs), "ng": sum(r["decision"] == "NG" for r in recs),
            "error": sum(r["decision"] is None for r in recs)}
    assert want == {"ok": 9, "ng": 3, "error": 0}

    def counted() -> dict[str, float]:
        parts = _metrics(url)["cdo_parts_total"]
        return {dict(k)["decision"]: v for k, v in parts.items()}

    assert wait(lambda: counted() == want, 10), counted()
    m = _metrics(url)
    assert {dict(k)["source"] for k in m["cdo_parts_total"]} == {"folder"}
    assert m["cdo_latency_seconds_count"][()] == 12
    stages = {dict(k)["stage"] for k in m["cdo_stage_latency_seconds_count"]}
    assert stages == {"decode", "preprocess", "infer", "postprocess", "queue", "output"}
    assert all(v == 12 for v in m["cdo_stage_latency_seconds_count"].values())
    info = dict(next(iter(m["cdo_bundle_info"])))
    assert info["model_sha256"] == recs[0]["model_sha256"] and info["variant"] == "fp32"
    assert {dict(k)["kind"]: v for k, v in m["cdo_threshold"].items()} == {"image": 0.75, "pixel": 0.7}
    assert {dict(k)["queue"] for k in m["cdo_queue_depth"]} == {"acquired", "preprocessed", "inferred"}
    assert m["cdo_dropped_frames_total"][()] == 0
    assert m["cdo_sink_failures_total"] and all(v == 0 for v in m["cdo_sink_failures_total"].values())
    assert m["cdo_drift_state"][(("state", "collecting"),)] == 1 and m["cdo_drift_level"][()] == -1
    assert m["cdo_drift_calibration_mean"][()] == 0.45

    state = json.loads(get(url + "api/state")[1])
    assert [p["n"] for p in state["recent"]] == list(range(12, 0, -1))
    ng = next(p for p in state["recent"] if p["decision"] == "NG")
    status, jpeg, headers = get(url + f"thumb/{ng['n']}.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
    assert get(url + "thumb/999.jpg")[0] == 404
    assert get(url + "nothing")[0] == 404

    run.proc.send_signal(signal.SIGTERM)
    stdout, _ = run.proc.communicate(timeout=30)
    assert run.proc.returncode == 0, "".join(run.lines)
    assert f"processed 12 | OK {want['ok']} | NG {want['ng']} | errors 0" in stdout  # the CLI's summary agrees
    summary = json.loads((run.out / "summary.json").read_text())
    assert (summary["ok"], summary["ng"]) == (want["ok"], want["ng"])
    assert summary["sink_errors"] == {"overlay": 0, "route": 0, "live": 0}


def test_token_is_enforced_and_required_off_localhost(live_run, cli, tiny_bundle, tmp_path, unused_port):
    refused = cli("cdo-inspect", tiny_bundle, "--source", tmp_path, "--out", tmp_path / "o", "--http",
                  f"0.0.0.0:{unused_port}", env={k: v for k, v in os.environ.items() if k != "CDO_HTTP_TOKEN"})
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("Error: --http 0.0.0.0:") and "token" in refused.stderr

    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    run = live_run("--http", "0.0.0.0:0", "--http-token-file", token_file, env={"CDO_HTTP_TOKEN": "other"})
    url = run.wait_url()
    assert url.startswith("http://0.0.0.0:")
    local = url.replace("0.0.0.0", "127.0.0.1")
    for path in ("metrics", "", "api/state"):
        assert get(local + path)[0] == 401
        assert get(local + path, token="other")[0] == 401  # the file wins over the environment
        assert get(local + path, token="s3cret-token")[0] == 200
    assert get(local + "?token=s3cret-token")[0] == 200  # what a browser uses
    assert get(local + "healthz")[0] == 200  # probes need no token
    status, _, headers = get(local + "metrics")
    assert headers.get("WWW-Authenticate") == "Bearer"
    assert _metrics(local, "s3cret-token")["cdo_parts_total"]
    run.proc.send_signal(signal.SIGTERM)
    run.proc.communicate(timeout=30)
    assert run.proc.returncode == 0
