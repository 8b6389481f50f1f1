#!/usr/bin/env python3
"""Peak memory (max RSS) of the launcher and of a full install.

  --version            cat dist/install.pyz | python3 - --version, cold (empty cache) and warm
  install, --root      cat dist/install.pyz | python3 - --yes --root DIR  (mTLS), first run (cold cache)
                       and a re-run with nothing to change (warm: the installer runs in the launcher's process)
  install, Docker      curl -fsSL http://mirror/install.pyz | python3 - --yes --json on a fresh systemd
                       server of the harness (mTLS, standalone), measured inside the container; first run
                       and a re-run (skipped with the reason when Docker is unavailable; --no-docker)

Two figures each: the installer process's own peak (VmHWM, polled every 20 ms, kept across the launcher's
exec into shiv) and os.wait4's ru_maxrss (the largest single process of the tree: apt, certbot, ...).

    python3 bench/memory.py [--runs 3] [--no-docker]

Writes bench/results/memory.json."""

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

MB = 1024.0


def figures(runs):
    return {"installer_peak_mb": round(max(r.hwm_kb or r.maxrss_kb for r in runs) / MB, 1),
            "tree_maxrss_mb": round(max(r.maxrss_kb for r in runs) / MB, 1), "runs": len(runs)}


# The installer from build/site (what build.py packed), in this process, under tracemalloc: Python's own
# allocations at their peak, on a first install and on a re-run under the same --root.
_TRACED = r"""
import os, sys, tracemalloc
site, pyz, root = sys.argv[1:4]
arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(os.uname().machine, os.uname().machine)
sys.path[:0] = [site, os.path.join(site, "_actvt_platform", arch)]
tracemalloc.start()
sys.argv = [pyz, "--yes", "--root", root]
from installer.commands.cli import main
try:
    rc = main()
except SystemExit as exc:
    rc = exc.code
sys.stderr.write("TRACED %d %d\n" % (rc or 0, tracemalloc.get_traced_memory()[1]))
"""


def traced_peaks(python, env):
    """(first install, re-run) peaks of Python allocations in MB, or None when build/ is missing."""
    site, pyz = os.path.join(C.REPO, "build", "site"), os.path.join(C.REPO, "build", "actvt.pyz")
    if not (os.path.isdir(site) and os.path.isfile(pyz)):
        return None
    root = tempfile.mkdtemp(prefix="actvt-bench-root-")
    peaks = []
    try:
        for _ in range(2):
            run = C.measure([python, "-c", _TRACED, site, pyz, root], env)
            line = [x for x in run.err.splitlines() if x.startswith("TRACED ")]
            if run.rc != 0 or not line or line[-1].split()[1] != "0":
                return None
            peaks.append(round(int(line[-1].split()[2]) / 1e6, 1))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"first_install_mb": peaks[0], "rerun_mb": peaks[1], "zipapp_mb": round(os.path.getsize(pyz) / 1e6, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    C.private_cache()
    pyz = C.ensure_pyz()
    python = C.python_binary()
    with open(pyz, "rb") as handle:
        data = handle.read()
    env = C.clean_env()
    result = {"machine": C.machine(), "python": python, "target_mb": 100, "local": {}}
    cold, warm = [], []
    for _ in range(args.runs):
        C.empty_cache()
        cold.append(C.measure([python, "-", "--version"], env, stdin_data=data, poll_hwm=True).check("--version"))
        warm.append(C.measure([python, "-", "--version"], env, stdin_data=data, poll_hwm=True).check("--version"))
    floor = [C.measure([python, "-c", "pass"], env, poll_hwm=True) for _ in range(args.runs)]
    result["local"]["floor (python3 -c pass)"] = figures(floor)
    result["local"]["--version, cold"] = figures(cold)
    result["local"]["--version, warm"] = figures(warm)
    install_env = C.clean_env(ACTVT_DOMAIN="monitor.example.com", ACTVT_EMAIL="you@example.com",
                              ACTVT_ENABLE_MTLS="yes")
    first, again = [], []
    for _ in range(args.runs):
        root = tempfile.mkdtemp(prefix="actvt-bench-root-")
        try:
            C.empty_cache()
            argv = [python, "-", "--yes", "--json", "--root", root]
            first.append(C.measure(argv, install_env, stdin_data=data, poll_hwm=True).check("install under --root"))
            run = C.measure(argv, install_env, stdin_data=data, poll_hwm=True).check("re-run under --root")
            assert json.loads(run.out)["changed"] == 0, run.out
            again.append(run)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    result["local"]["install --root (mTLS), first run"] = figures(first)
    result["local"]["install --root (mTLS), re-run"] = figures(again)
    result["tracemalloc"] = traced_peaks(python, install_env)
    if args.no_docker:
        result["docker"] = {"skipped": "--no-docker"}
    else:
        H, harness = C.harness_or_reason()
        if H is None:
            print("memory: Docker part skipped: %s" % harness)
            result["docker"] = {"skipped": harness}
        else:
            try:
                server = harness.server()
                server.trust_acme_ca()
                one, _, _ = C.measured_install(H, server, "--yes", "--json", env=C.MTLS_ENV)
                two, out, _ = C.measured_install(H, server, "--yes", "--json", env=C.MTLS_ENV)
                assert json.loads(out)["changed"] == 0
            finally:
                harness.close()
            result["docker"] = {
                "server": H.image_name("server"),
                "first install": {"installer_peak_mb": round(one["installer_hwm_kb"] / MB, 1),
                                  "tree_maxrss_mb": round(one["tree_maxrss_kb"] / MB, 1)},
                "re-run": {"installer_peak_mb": round(two["installer_hwm_kb"] / MB, 1),
                           "tree_maxrss_mb": round(two["tree_maxrss_kb"] / MB, 1)},
            }
    rows = dict(result["local"])
    rows.update({"Docker: " + k: v for k, v in result["docker"].items() if isinstance(v, dict)})
    result["met"] = {name: row["installer_peak_mb"] <= 100 for name, row in rows.items()}
    print("peak memory (installer process / largest process of the tree), MB:")
    for name, row in rows.items():
        print("  %-40s %6.1f  %6.1f  %s" % (name, row["installer_peak_mb"], row["tree_maxrss_mb"],
                                            "" if row["installer_peak_mb"] <= 100 else "over 100 MB"))
    if result["tracemalloc"]:
        t = result["tracemalloc"]
        print("  tracemalloc (Python allocations, peak): first install %.1f MB, re-run %.1f MB; the zipapp is %.1f MB"
              % (t["first_install_mb"], t["rerun_mb"], t["zipapp_mb"]))
    C.write_result("memory", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
