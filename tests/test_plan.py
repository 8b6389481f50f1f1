"""Planning: the mode decision, the plan for every combination, and the empty plan after apply."""

import dataclasses
import itertools

import pytest

from installer.engine import engine
from installer.core import paths
from installer.core.paths import Root
from installer.core.facts import gather
from installer.plans.registry import Context, build_plan, connection_url, decide, reads

from helpers import RecordingRunner, make_config, make_facts

CTX = Context(version="1.0.0", now="2026-11-26T00:00:00Z")


@pytest.mark.parametrize("web,mode,force,expected", [
    (None, "auto", "no", "standalone"),
    ("nginx", "auto", "no", "proxy"),
    ("apache2", "auto", "no", "proxy"),
    ("httpd", "auto", "no", "proxy"),
    ("caddy", "auto", "no", "standalone"),  # something unknown listens: not a web server we can use
    ("nginx", "standalone", "no", "standalone"),
    (None, "proxy", "no", "proxy"),
    ("nginx", "proxy", "yes", "standalone"),  # forced standalone wins over everything
    ("nginx", "auto", "yes", "standalone"),
])
def test_mode_decision(web, mode, force, expected):
    decisions = decide(make_config(install_mode=mode, force_standalone=force), make_facts(web=web))
    assert decisions.mode == expected


def test_web_server_names():
    assert decide(make_config(), make_facts(web="apache2")).webserver == "apache"
    assert decide(make_config(), make_facts(web="caddy")).webserver == "unknown"
    assert decide(make_config(), make_facts()).webserver == "none"


def test_connection_url():
    cfg = make_config(vector_port="9000")
    assert connection_url(cfg, decide(cfg, make_facts())) == "wss://monitor.example.com:9000"
    cfg = make_config(install_mode="proxy")
    assert connection_url(cfg, decide(cfg, make_facts())) == "wss://monitor.example.com/actvt"


COMBINATIONS = list(itertools.product(["standalone", "proxy"], ["yes", "no"], [True, False], ["yes", "no"]))


@pytest.mark.parametrize("mode,mtls,gpu,firewall", COMBINATIONS)
def test_every_combination_plans_applies_and_converges(tmp_path, mode, mtls, gpu, firewall):
    cfg = make_config(install_mode=mode, enable_mtls=mtls, configure_firewall=firewall)
    facts = make_facts(web="nginx" if mode == "proxy" else None, gpu=gpu)
    plan = build_plan(cfg, facts, CTX)
    state = dict(line.split("=", 1) for line in next(
        a for a in plan.actions if getattr(a, "path", "") == paths.STATE_FILE).content.decode().splitlines())
    assert state["mode"] == mode and state["mtls"] == ("enabled" if mtls == "yes" else "disabled")
    assert ("mtls_client_cn" in state) == (mtls == "yes")
    assert state["webserver"] == ("nginx" if mode == "proxy" else "none")
    eng = engine.Engine(Root(str(tmp_path)), RecordingRunner(), manage_owner=False)
    eng.apply(eng.check(plan))
    # feeding the facts after the run back in gives a plan with nothing to change
    read = gather(Root(str(tmp_path)), {}, reads=reads(cfg))
    after = dataclasses.replace(facts, files=read.files, dirs=read.dirs)
    again = eng.check(build_plan(cfg, after, Context(version="1.0.0", now="2030-01-01T00:00:00Z")))
    assert [item.action.describe() for item in again if item.status == engine.CHANGE] == []


def test_installed_at_is_kept_across_runs():
    first = make_facts(files={paths.STATE_FILE: b"version=0.9\ninstalled_at=2025-01-01T00:00:00Z\nmode=proxy\n"})
    plan = build_plan(make_config(), first, CTX)
    state = next(a for a in plan.actions if getattr(a, "path", "") == paths.STATE_FILE).content.decode()
    assert "installed_at=2025-01-01T00:00:00Z\n" in state and "version=1.0.0\n" in state


def test_the_installer_is_kept_only_when_running_from_a_zipapp():
    cfg, facts = make_config(), make_facts()
    assert paths.PERSISTED_PYZ not in [getattr(a, "path", "") for a in build_plan(cfg, facts, CTX).actions]
    ctx = Context(version="1.0.0", now="x", pyz="/var/cache/actvt/pyz/0123/actvt.pyz", build_id="abc")
    actions = {getattr(a, "path", ""): a for a in build_plan(cfg, facts, ctx).actions}
    kept = actions[paths.PERSISTED_PYZ]
    assert (kept.source, kept.host_source, kept.mode) == ("/var/cache/actvt/pyz/0123/actvt.pyz", True, 0o755)
    command = actions[paths.COMMAND].content.decode()
    assert 'KEPT_PYZ = "/usr/local/lib/actvt/actvt.pyz"' in command and 'BUILD_ID = "abc"' in command
