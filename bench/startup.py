#!/usr/bin/env python3
"""Start-up of the launcher against bare Python, same interpreter, same run, interleaved:

  floor             python3 -c pass
  pipe cold/warm    cat dist/install.pyz | python3 - --version     (cold: extraction cache emptied first)
  isolated ...      cat dist/install.pyz | python3 -I - --version  (the README's form)
  ... each again with PYTHONUNBUFFERED=1 (without -I, CPython then reads the script from stdin one byte
      per read(); -I ignores every PYTHON* variable)
  actvt             actvt --version: the kept command from an install under a temporary --root

    python3 bench/startup.py [--runs 10] [--debian all|bullseye,bookworm,trixie]

Prints medians and ratios to the floor; writes bench/results/startup.json. As root it runs in a private
mount namespace with its own /var/cache/actvt (see _common.private_cache). With --debian, the same
measurement also runs inside a container of each Debian release's base image of the Docker harness
(actvt-base:<suite>, Python 3.9, 3.11 and 3.13; ACTVT_E2E_BASE_<SUITE> names another), with no network,
and its figures are stored under "debian"."""

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

EXPECTED = "actvt-installer "
SUITES = ("bullseye", "bookworm", "trixie")  # Debian 11, 12, 13 (tests/integration/harness.py)
IN_CONTAINER = "/opt/actvt-bench"

#: name -> (the interpreter's options before the script, PYTHONUNBUFFERED=1?, cold?)
PIPES = {
    "pipe_cold": ([], False, True),
    "pipe_warm": ([], False, False),
    "pipe_cold_unbuffered": ([], True, True),
    "pipe_warm_unbuffered": ([], True, False),
    "isolated_cold": (["-I"], False, True),
    "isolated_warm": (["-I"], False, False),
    "isolated_cold_unbuffered": (["-I"], True, True),
    "isolated_warm_unbuffered": (["-I"], True, False),
}


def command_text(name):
    options, unbuffered, cold = PIPES[name]
    text = "cat dist/install.pyz | %spython3 %s- --version" % ("PYTHONUNBUFFERED=1 " if unbuffered else "",
                                                             "".join(o + " " for o in options))
    return text + ("  # after removing /var/cache/actvt/{pyz,shiv}" if cold else "")


def read_syscalls(python, data, env, options=()):
    """read() calls of one warm pipe run, counted by `strace -c` (None without strace): the profile
    behind the PYTHONUNBUFFERED figures. Nearly all are on stdin (the rest: a few hundred for imports)."""
    if not shutil.which("strace"):
        return None
    with tempfile.NamedTemporaryFile(prefix="actvt-bench-strace-") as trace:
        run = C.measure(["strace", "-f", "-c", "-e", "trace=read", "-o", trace.name, python] + list(options)
                        + ["-", "--version"], env, stdin_data=data)
        if run.rc != 0:
            return None
        with open(trace.name, errors="replace") as handle:
            rows = [line.split() for line in handle if line.split()[-1:] == ["read"]]
    if not rows:
        return None
    return {"read_calls": int(rows[0][3]), "bytes": len(data)}


def measure_here(runs, python):
    pyz = C.ensure_pyz()
    with open(pyz, "rb") as handle:
        data = handle.read()
    envs = {False: C.clean_env(), True: C.clean_env(PYTHONUNBUFFERED="1")}
    root = tempfile.mkdtemp(prefix="actvt-bench-root-")
    try:
        actvt = C.kept_command(pyz, root, python)
        cases = {name: [] for name in ["floor"] + list(PIPES) + ["actvt"]}
        rss = {name: 0 for name in cases}
        load_before = C.load()
        for i in range(runs):
            steps = [("floor", [python, "-c", "pass"], envs[False], None, False)]
            steps += [(name, [python] + options + ["-", "--version"], envs[unbuffered], data, cold)
                      for name, (options, unbuffered, cold) in PIPES.items()]
            steps.append(("actvt", [python, actvt, "--version"], envs[False], None, False))
            for name, argv, env, stdin, cold in steps:
                if cold:
                    C.empty_cache()
                run = C.measure(argv, env, stdin_data=stdin).check(name)
                if name != "floor" and not run.out.startswith(EXPECTED):
                    raise SystemExit("%s printed %r" % (name, run.out))
                cases[name].append(run.seconds)
                rss[name] = max(rss[name], run.maxrss_kb)
            print("  round %d/%d: %s" % (i + 1, runs, ", ".join("%s %.3f" % (k, v[-1]) for k, v in cases.items())),
                  flush=True)
        floor = C.median(cases["floor"])
        result = {
            "machine": C.machine(),
            "load_before": load_before,
            "python": python,
            "pyz_bytes": len(data),
            "runs": runs,
            "commands": dict([("floor", "python3 -c pass")] + [(name, command_text(name)) for name in PIPES]
                             + [("actvt", "actvt --version  # /usr/local/bin/actvt from an install under --root")]),
            "seconds": {name: C.summary(values) for name, values in cases.items()},
            "ratio_to_floor": {name: round(C.median(values) / floor, 2) for name, values in cases.items()},
            "maxrss_kb": rss,
            "targets": {
                "actvt_ratio_max": 3.0,
                "pipe_cold_seconds_max": 2.0,
            },
        }
        result["strace"] = {"buffered": read_syscalls(python, data, envs[False]),
                            "unbuffered": read_syscalls(python, data, envs[True]),
                            "isolated_unbuffered": read_syscalls(python, data, envs[True], ["-I"])}
        result["met"] = {
            "actvt_ratio": result["ratio_to_floor"]["actvt"] <= 3.0,
            "pipe_cold": result["seconds"]["pipe_cold"]["median"] <= 2.0,
            "pipe_cold_unbuffered": result["seconds"]["pipe_cold_unbuffered"]["median"] <= 2.0,
            "isolated_cold_unbuffered": result["seconds"]["isolated_cold_unbuffered"]["median"] <= 2.0,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def base_image(suite):
    return os.environ.get("ACTVT_E2E_BASE_%s" % suite.upper(), "actvt-base:%s" % suite)


def measure_in_debian(suites, runs):
    """This script (and _common.py, and the same install.pyz) in a container of each release's base
    image, no network: {suite: its result} or {"skipped": why}."""
    H, client = C.docker_or_reason(timeout=1800)
    if H is None:
        return {"skipped": client}
    H.remove_leftovers(client)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, path in (("startup.py", os.path.abspath(__file__)), ("_common.py", os.path.join(C.HERE, "_common.py")),
                           ("install.pyz", C.ensure_pyz())):
            tar.add(path, arcname="actvt-bench/" + name)
    found = {}
    for suite in suites:
        image = base_image(suite)
        print("\n== Debian %s (%s)" % (suite, image), flush=True)
        try:
            container = client.containers.create(image, ["sleep", "infinity"], network_disabled=True,
                                                 labels={H.LABEL: "bench-startup", H.LABEL_PID: str(os.getpid())})
        except Exception as exc:  # the image is missing
            found[suite] = {"skipped": "%s: %s" % (image, exc)}
            continue
        try:
            container.start()
            container.put_archive("/opt", buf.getvalue())
            rc, output = container.exec_run(
                ["python3", IN_CONTAINER + "/startup.py", "--runs", str(runs)],
                environment={"ACTVT_BENCH_PYZ": IN_CONTAINER + "/install.pyz", "ACTVT_BENCH_SHARED_CACHE": "1"})
            text = output.decode("utf-8", "replace")
            print(text, flush=True)
            if rc != 0:
                found[suite] = {"skipped": "the measurement failed in %s (exit %d): %s" % (image, rc, text[-500:])}
                continue
            rc, output = container.exec_run(["cat", IN_CONTAINER + "/results/startup.json"])
            found[suite] = dict(json.loads(output.decode()), image=image)
        finally:
            container.remove(force=True, v=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--python", default=C.python_binary(), help="interpreter to measure (default: this one)")
    parser.add_argument("--debian", default="", help="also in containers of these releases: all, or e.g. bookworm,trixie")
    args = parser.parse_args()
    suites = SUITES if args.debian == "all" else tuple(s for s in args.debian.split(",") if s)
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        parser.error("--debian: unknown release(s) %s; allowed: all, or some of %s" % (", ".join(unknown),
                                                                                     ",".join(SUITES)))
    C.private_cache()
    result = measure_here(args.runs, args.python)
    if suites:
        result["debian"] = measure_in_debian(suites, args.runs)
    print("start-up, median of %d runs (%s, Python %s, load %s):"
          % (args.runs, args.python, result["machine"]["python"], result["machine"]["load"]["1min"]))
    for name, values in result["seconds"].items():
        print("  %-26s %7.3f s  %6.1fx floor  max RSS %5.1f MB"
              % (name, values["median"], result["ratio_to_floor"][name], result["maxrss_kb"][name] / 1024))
    for mode, counted in result["strace"].items():
        if counted:
            print("  strace -c, warm pipe, %s: %d read() calls (stdin: %d bytes)"
                  % (mode, counted["read_calls"], counted["bytes"]))
    debian = result.get("debian") or {}
    if "skipped" in debian:
        print("  Debian releases: not measured: %s" % debian["skipped"])
        debian = {}
    for suite, found in sorted(debian.items()):
        if "seconds" in found:
            print("  Debian %s (Python %s): %s" % (suite, found["machine"]["python"], ", ".join(
                "%s %.3f s" % (name, found["seconds"][name]["median"]) for name in PIPES)))
        else:
            print("  Debian %s: not measured: %s" % (suite, found.get("skipped", found)))
    C.write_result("startup", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
