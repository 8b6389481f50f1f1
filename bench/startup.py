#!/usr/bin/env python3
"""Start-up of the launcher against bare Python, same interpreter, same run, interleaved:

  floor        python3 -c pass
  pipe cold    cat dist/install.pyz | python3 - --version    (extraction cache emptied before each run)
  pipe warm    the same with the cache in place
  ... both again with PYTHONUNBUFFERED=1 (CPython then reads the script from stdin one byte per read())
  actvt        actvt --version: the kept command from an install under a temporary --root

    python3 bench/startup.py [--runs 10]

Prints medians and ratios to the floor; writes bench/results/startup.json. As root it runs in a private
mount namespace with its own /var/cache/actvt (see _common.private_cache)."""

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

EXPECTED = "actvt-installer "


def read_syscalls(python, data, env):
    """read() calls of one warm pipe run, counted by `strace -c` (None without strace): the profile
    behind the PYTHONUNBUFFERED figures. Nearly all are on stdin (the rest: a few hundred for imports)."""
    if not shutil.which("strace"):
        return None
    with tempfile.NamedTemporaryFile(prefix="actvt-bench-strace-") as trace:
        run = C.measure(["strace", "-f", "-c", "-e", "trace=read", "-o", trace.name, python, "-", "--version"], env,
                        stdin_data=data)
        if run.rc != 0:
            return None
        with open(trace.name, errors="replace") as handle:
            rows = [line.split() for line in handle if line.split()[-1:] == ["read"]]
    if not rows:
        return None
    return {"read_calls": int(rows[0][3]), "bytes": len(data)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--python", default=C.python_binary(), help="interpreter to measure (default: this one)")
    args = parser.parse_args()
    C.private_cache()
    pyz = C.ensure_pyz()
    python = args.python
    with open(pyz, "rb") as handle:
        data = handle.read()
    plain, unbuffered = C.clean_env(), C.clean_env(PYTHONUNBUFFERED="1")
    root = tempfile.mkdtemp(prefix="actvt-bench-root-")
    try:
        actvt = C.kept_command(pyz, root, python)
        cases = {name: [] for name in ("floor", "pipe_cold", "pipe_warm", "pipe_cold_unbuffered",
                                       "pipe_warm_unbuffered", "actvt")}
        rss = {name: 0 for name in cases}
        pipe = [python, "-", "--version"]
        load_before = C.load()
        for i in range(args.runs):
            steps = [
                ("floor", [python, "-c", "pass"], plain, None, False),
                ("pipe_cold", pipe, plain, data, True),
                ("pipe_warm", pipe, plain, data, False),
                ("pipe_cold_unbuffered", pipe, unbuffered, data, True),
                ("pipe_warm_unbuffered", pipe, unbuffered, data, False),
                ("actvt", [python, actvt, "--version"], plain, None, False),
            ]
            for name, argv, env, stdin, cold in steps:
                if cold:
                    C.empty_cache()
                run = C.measure(argv, env, stdin_data=stdin).check(name)
                if name != "floor" and not run.out.startswith(EXPECTED):
                    raise SystemExit("%s printed %r" % (name, run.out))
                cases[name].append(run.seconds)
                rss[name] = max(rss[name], run.maxrss_kb)
            print("  round %d/%d: %s" % (i + 1, args.runs, ", ".join("%s %.3f" % (k, v[-1]) for k, v in cases.items())),
                  flush=True)
        floor = C.median(cases["floor"])
        result = {
            "machine": C.machine(),
            "load_before": load_before,
            "python": python,
            "pyz_bytes": len(data),
            "runs": args.runs,
            "commands": {
                "floor": "python3 -c pass",
                "pipe_cold": "cat dist/install.pyz | python3 - --version  # after removing /var/cache/actvt/{pyz,shiv}",
                "pipe_warm": "cat dist/install.pyz | python3 - --version",
                "pipe_cold_unbuffered": "cat dist/install.pyz | PYTHONUNBUFFERED=1 python3 - --version  # cold",
                "pipe_warm_unbuffered": "cat dist/install.pyz | PYTHONUNBUFFERED=1 python3 - --version",
                "actvt": "actvt --version  # /usr/local/bin/actvt from an install under --root",
            },
            "seconds": {name: C.summary(values) for name, values in cases.items()},
            "ratio_to_floor": {name: round(C.median(values) / floor, 2) for name, values in cases.items()},
            "maxrss_kb": rss,
            "targets": {
                "actvt_ratio_max": 3.0,
                "pipe_cold_seconds_max": 2.0,
            },
        }
        result["strace"] = {"buffered": read_syscalls(python, data, plain),
                            "unbuffered": read_syscalls(python, data, unbuffered)}
        result["met"] = {
            "actvt_ratio": result["ratio_to_floor"]["actvt"] <= 3.0,
            "pipe_cold": result["seconds"]["pipe_cold"]["median"] <= 2.0,
            "pipe_cold_unbuffered": result["seconds"]["pipe_cold_unbuffered"]["median"] <= 2.0,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("start-up, median of %d runs (%s, Python %s, load %s):"
          % (args.runs, python, result["machine"]["python"], result["machine"]["load"]["1min"]))
    for name, values in result["seconds"].items():
        print("  %-22s %7.3f s  %6.1fx floor  max RSS %5.1f MB"
              % (name, values["median"], result["ratio_to_floor"][name], rss[name] / 1024))
    for mode, counted in result["strace"].items():
        if counted:
            print("  strace -c, warm pipe, %s: %d read() calls (stdin: %d bytes)"
                  % (mode, counted["read_calls"], counted["bytes"]))
    C.write_result("startup", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
