"""Fixtures of the Docker end-to-end tests (see README.md beside this file).

- `harness` (session): networks + mirror + acme + client, with dist/install.pyz published on the mirror
  (built with `python3 build.py` when missing). When Docker or the images cannot be used, the tests that
  need it are skipped with the reason, except under CI=true where they fail.
- `new_server` (function): a factory of fresh systemd servers, removed after the test; when the test
  fails, the installer's log and the last journal lines of the relevant units are added to the report.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as H  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PYZ = REPO / "dist" / "install.pyz"

_unavailable = {}


def _is_ci():
    return os.environ.get("CI", "").lower() == "true"


def _give_up(reason):
    _unavailable["reason"] = reason
    if _is_ci():
        pytest.fail("end-to-end harness unavailable under CI=true: %s" % reason, pytrace=False)
    pytest.skip("end-to-end harness unavailable: %s" % reason)


def ensure_pyz():
    if not PYZ.exists():
        r = subprocess.run([sys.executable, str(REPO / "build.py")], cwd=str(REPO), capture_output=True,
                           text=True)
        if r.returncode != 0 or not PYZ.exists():
            raise H.HarnessUnavailable("`python3 build.py` failed (exit %d): %s"
                                       % (r.returncode, (r.stderr or r.stdout)[-2000:]))
    return PYZ


@pytest.fixture(scope="session")
def docker_client():
    if "reason" in _unavailable:
        _give_up(_unavailable["reason"])
    try:
        return H.connect()
    except H.HarnessUnavailable as exc:
        _give_up(str(exc))


@pytest.fixture(scope="session")
def pyz():
    try:
        return ensure_pyz()
    except H.HarnessUnavailable as exc:
        _give_up(str(exc))


@pytest.fixture(scope="session")
def harness(docker_client, pyz):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "ACTVT_E2E_CACHE_VOLUME" not in os.environ:
        # one apt-cacher-ng per worker's harness: each gets its own cache, never two writers on one
        H.CACHE_VOLUME = "%s-%s" % (H.CACHE_VOLUME, worker)
    try:
        h = H.Harness(docker_client, pyz_path=str(pyz))
    except H.HarnessUnavailable as exc:
        _give_up(str(exc))
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def new_server(request, harness):
    """new_server(kind="server", suite="bookworm", **kw) -> Host; every one is removed after the test."""
    hosts = []
    request.node._actvt_hosts = hosts

    def make(kind="server", suite="bookworm", **kw):
        try:
            host = harness.server(kind, suite, **kw)
        except H.HarnessUnavailable as exc:
            _give_up(str(exc))
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        harness.remove(host)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for host in getattr(item, "_actvt_hosts", []):
        try:
            report.sections.append(("actvt diagnostics: %s" % host.name, host.diagnostics()))
        except Exception as exc:  # diagnostics must never hide the failure itself
            report.sections.append(("actvt diagnostics: %s" % host.name, "unavailable: %s" % exc))
        runs = [str(r) for name, r in host.harness.runs if name == host.name][-3:]
        if runs:
            report.sections.append(("installer runs on %s (last %d)" % (host.name, len(runs)), "\n\n".join(runs)))


def pytest_terminal_summary(terminalreporter):
    if "reason" in _unavailable:
        verb = "FAILED" if _is_ci() else "skipped"
        terminalreporter.write_line("end-to-end tests %s: %s" % (verb, _unavailable["reason"]), yellow=True)
