#!/usr/bin/env python3
"""A real install on the Docker harness (tests/integration/harness.py): a fresh systemd server (Debian 12),
Pebble as the ACME server, the Vector test double from the mirror's apt repository.

  first    curl -fsSL http://mirror/install.pyz | python3 - --yes --json   (standalone, mTLS)
  re-run   the same command again, nothing to change (asserted: 0 changes, same Vector MainPID)

Wall time is measured inside the server (bench/_in_container.py); the per-step durations come from the
--json summary ("steps"); "start-up, checks and summary" is the rest of the wall time.

    python3 bench/install_times.py [--reruns 5]

Skips with the reason (exit 0, "skipped" in the JSON) when Docker or the test images are unavailable:
set them up with `bash tests/integration/setup.sh`. Writes bench/results/install_times.json."""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402


def breakdown(figures, summary):
    steps = [{"step": s["step"], "seconds": s["seconds"]} for s in summary.get("steps", [])]
    rest = figures["seconds"] - sum(s["seconds"] for s in steps)
    return {"seconds": figures["seconds"], "steps": steps, "other_seconds": round(max(rest, 0.0), 3),
            "changed": summary["changed"], "installer_hwm_kb": figures["installer_hwm_kb"],
            "tree_maxrss_kb": figures["tree_maxrss_kb"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=5)
    parser.add_argument("--suite", default="bookworm")
    args = parser.parse_args()
    C.ensure_pyz()
    H, harness = C.harness_or_reason()
    result = {"machine": C.machine(), "command": "curl -fsSL http://mirror/install.pyz | python3 - --yes --json",
              "env": {"ACTVT_DOMAIN": "actvt-e2e.example.com", "ACTVT_EMAIL": "admin@example.com",
                      "ACTVT_ENABLE_MTLS": "yes", "ACTVT_ACME_SERVER": "https://acme:14000/dir (Pebble)",
                      "ACTVT_VECTOR_APT_URL": "http://mirror/vector-apt (the Vector test double)"},
              "targets": {"rerun_seconds_max": 2.0}}
    if H is None:
        return C.write_skipped("install_times", result, harness)
    try:
        server = harness.server(suite=args.suite)
        server.trust_acme_ca()
        result["server"] = {"image": H.image_name("server", args.suite),
                            "python": server.exec(["python3", "--version"]).out.strip(),
                            "nproc": server.exec(["nproc"]).out.strip()}
        figures, out, _ = C.measured_install(H, server, "--yes", "--json", env=C.MTLS_ENV)
        first = json.loads(out)
        assert first["status"] == "ok" and first["mode"] == "standalone" and first["mtls"], first
        result["first"] = breakdown(figures, first)
        unit = server.unit("vector.service")
        assert unit["ActiveState"] == "active", unit
        pid = unit["MainPID"]
        result["reruns"] = []
        for i in range(args.reruns):
            figures, out, _ = C.measured_install(H, server, "--yes", "--json", env=C.MTLS_ENV)
            summary = json.loads(out)
            after = server.unit("vector.service")
            assert summary["changed"] == 0, "a re-run changed %s" % [
                a for a in summary["actions"] if a["status"] == "changed"]
            assert after["MainPID"] == pid and after["ActiveState"] == "active", (unit, after)
            result["reruns"].append(breakdown(figures, summary))
            print("  re-run %d: %.2f s, 0 changes, Vector MainPID %s unchanged" % (i + 1, figures["seconds"], pid),
                  flush=True)
        times = [r["seconds"] for r in result["reruns"]]
        result["rerun_seconds"] = C.summary(times)
        result["vector_main_pid"] = {"before": pid, "after": pid, "restarts": 0}
        result["met"] = {"rerun": result["rerun_seconds"]["median"] <= 2.0}
        result["load_after"] = C.load()
    finally:
        harness.close()
    f = result["first"]
    print("first standalone mTLS install: %.1f s (load %s)" % (f["seconds"], result["machine"]["load"]["1min"]))
    for step in f["steps"]:
        print("  %-55s %7.2f s" % (step["step"], step["seconds"]))
    print("  %-55s %7.2f s" % ("start-up, checks and summary", f["other_seconds"]))
    print("re-run with nothing to change: median %.2f s of %d (0 changes, 0 restarts)"
          % (result["rerun_seconds"]["median"], len(times)))
    C.write_result("install_times", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
