#!/usr/bin/env python3
"""Rolling out a fleet with Ansible: three servers (forks=3) against one, same run, same harness
(tests/integration/fleet.py: a controller with Debian's ansible-core holding the CA folder, systemd
servers reached over SSH, Pebble, the Vector test double).

  one      contrib/ansible/playbooks/fleet.yml (the collection actvt.installer) on one fresh server (standalone, trust-only mTLS)
  three    the same playbook on three fresh servers at once (ANSIBLE_FORKS=3)
  again    the same playbook once more on the three (asserted: changed=0 everywhere)

Wall time is measured around `ansible-playbook` (the controller's side: SSH, the role, the installer on
each server). Whichever goes second finds the harness's apt cache warmed by the first, so the rounds
alternate the order (one first, then three first, ...); the figures are medians over the rounds.
Goal: the three at most 2x the one.

    python3 bench/fleet.py [--rounds 2]

Skips with the reason (exit 0, "skipped" in the JSON) when Docker or the test images are unavailable:
set them up with `bash tests/integration/setup.sh`. Writes bench/results/fleet.json."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

THREE = {"srv-a": ("a.fleet.example.com", "standalone"), "srv-b": ("b.fleet.example.com", "standalone"),
         "srv-c": ("c.fleet.example.com", "standalone")}
ONE = {"srv-a": THREE["srv-a"]}
GOAL = 2.0


def roll_out(H, harness, servers, pyz):
    """Fresh servers and controller; the CA folder made; two timed playbook runs. Returns the figures."""
    from fleet import CA_DIR, Fleet
    fleet = Fleet(harness, servers, pyz)
    try:
        fleet.start()
        r = fleet.actvt("ca", "init", "--dir", CA_DIR)
        if r.rc != 0:
            raise SystemExit("actvt ca init failed on the controller:\n%s" % r)
        figures = {"servers": len(servers), "forks": 3,
                   "ansible": fleet.controller.exec(["ansible-playbook", "--version"]).out.splitlines()[0].strip()}
        for run in ("first", "again"):
            start = time.monotonic()
            r, stats = fleet.playbook(forks=3)
            seconds = time.monotonic() - start
            if r.rc != 0:
                raise SystemExit("ansible-playbook failed:\n%s" % r)
            changed = {name: stats[name]["changed"] for name in servers}
            if run == "first":
                assert all(changed.values()), stats
            else:
                assert not any(changed.values()), "a second run changed something: %s" % stats
            figures[run] = {"seconds": round(seconds, 3), "changed": changed}
            print("  %d server(s), %s run: %.1f s, changed %s" % (len(servers), run, seconds, changed), flush=True)
        return figures
    finally:
        for host in fleet.hosts.values():
            harness.remove(host)
        if fleet.controller is not None:
            harness.remove(fleet.controller)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of one and three (the order alternates)")
    args = parser.parse_args()
    pyz = C.ensure_pyz()
    H, harness = C.harness_or_reason()
    result = {"machine": C.machine(), "command": "ansible-playbook -i inventory fleet.yml (ANSIBLE_FORKS=3)",
              "targets": {"three_over_one_max": GOAL}}
    if H is None:
        return C.write_skipped("fleet", result, harness)
    try:
        rounds = []
        for number in range(args.rounds):
            sizes = (ONE, THREE) if number % 2 == 0 else (THREE, ONE)
            figures = {len(s): roll_out(H, harness, s, pyz) for s in sizes}
            rounds.append({"order": "one first" if number % 2 == 0 else "three first",
                           "one": figures[1], "three": figures[3]})
        result["rounds"] = rounds
        result["ansible"] = rounds[0]["one"]["ansible"]
        one = C.median([r["one"]["first"]["seconds"] for r in rounds])
        three = C.median([r["three"]["first"]["seconds"] for r in rounds])
        result["one_seconds"], result["three_seconds"] = one, three
        result["ratio"] = round(three / one, 3)
        result["again"] = {"one_seconds": C.median([r["one"]["again"]["seconds"] for r in rounds]),
                           "three_seconds": C.median([r["three"]["again"]["seconds"] for r in rounds])}
        result["met"] = result["ratio"] <= GOAL
        result["load_after"] = C.load()
    finally:
        harness.close()
    print("one server: %.1f s; three servers (forks=3): %.1f s; %.2fx (goal at most %.1fx: %s)"
          % (one, three, result["ratio"], GOAL, "met" if result["met"] else "missed"))
    C.write_result("fleet", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
