"""ACTVT_WAIT_FOR_DNS (issue 20, item 2): a first boot whose DNS record is made after the instance waits,
bounded, announced and with progress, for the domain to resolve, then goes on; after the bound it stops
with the error of a run that does not wait, saying it waited. The resolver, the clock and the sleep are
injected: nothing here looks a name up or sleeps."""

import dataclasses
import datetime

import pytest

from installer.commands import install
from installer.concerns import certbot
from installer.concerns.certbot import CertbotError
from installer.plans.registry import Context, build_plan

from helpers import DOMAIN, make_config, make_facts, run_cli, tree_digest
from test_certbot import CTX, lineage_facts

NOW = CTX.moment


class Clock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def resolver(answers, clock):
    """Answers ``answers[t]`` from the first t (seconds since the start) that has passed."""
    start = clock.now
    looked_up = []

    def resolve(domain):
        looked_up.append(domain)
        passed = clock.now - start
        return max(((t, value) for t, value in answers.items() if t <= passed), default=(0, ()))[1]

    resolve.looked_up = looked_up
    return resolve


def wait(answers, bound):
    clock, lines = Clock(), []
    resolve = resolver(answers, clock)
    found = certbot.wait_for_dns(DOMAIN, bound, lines.append, resolve=resolve, clock=clock, sleep=clock.sleep)
    return found, lines, clock, resolve


def test_the_record_made_after_the_boot_started_is_waited_for_then_the_run_goes_on():
    (addresses, waited), lines, clock, resolve = wait({0: (), 42: ("203.0.113.7",)}, 300)
    assert (addresses, waited) == (("203.0.113.7",), 45)  # looked up every 5 s: found at the first look after 42 s
    assert lines == [
        f"waiting for DNS: {DOMAIN} has no public address yet; looking it up every 5 s, for at most 300 s "
        "(ACTVT_WAIT_FOR_DNS)",
        f"still waiting for DNS: {DOMAIN} does not resolve (30 s of 300 s)",
        f"DNS: {DOMAIN} resolves to 203.0.113.7 after 45 s; going on"]
    assert set(clock.sleeps) == {5} and set(resolve.looked_up) == {DOMAIN}


def test_after_the_bound_it_gives_up_saying_so_and_never_sleeps_past_it():
    (addresses, waited), lines, clock, _ = wait({}, 62)
    assert (addresses, waited) == ((), 62)
    assert clock.sleeps[-1] == 2 and sum(clock.sleeps) == 62  # the last look-up is at the bound, not after it
    assert lines[1:] == [f"still waiting for DNS: {DOMAIN} does not resolve (30 s of 62 s)",
                         f"still waiting for DNS: {DOMAIN} does not resolve (60 s of 62 s)",
                         f"DNS: {DOMAIN} still has no public address after 62 s; giving up the wait"]


def test_an_etc_hosts_line_of_this_host_is_not_the_record():
    """cloud-init's manage_etc_hosts maps the host's FQDN to 127.0.1.1: clients and Let's Encrypt need the
    public record, so the wait goes on until one appears."""
    (addresses, waited), lines, _, _ = wait({0: ("127.0.1.1",), 31: ("127.0.1.1", "2001:db8::7")}, 120)
    assert addresses == ("127.0.1.1", "2001:db8::7") and waited == 35
    assert lines[1] == f"still waiting for DNS: {DOMAIN} resolves to 127.0.1.1 only (30 s of 120 s)"


@pytest.mark.parametrize("values,facts,needed", [
    ({"wait_for_dns": "300"}, make_facts(domain_addresses=()), True),
    ({"wait_for_dns": "300"}, make_facts(domain_addresses=("127.0.1.1",)), True),
    ({}, make_facts(domain_addresses=()), False),  # the default: no wait, as before
    ({"wait_for_dns": "0"}, make_facts(domain_addresses=()), False),
    ({"wait_for_dns": "300"}, make_facts(domain_addresses=("203.0.113.7",)), False),
    ({"wait_for_dns": "300"}, make_facts(domain_addresses=None), False),  # --root: nothing is looked up
    ({"wait_for_dns": "300"}, lineage_facts(domain_addresses=()), False),  # a reused certificate needs no DNS now
    ({"wait_for_dns": "300", "reuse_cert": "no"}, lineage_facts(domain_addresses=()), True),
], ids=["no address", "etc-hosts only", "not asked", "zero", "resolves", "root", "reused", "renewal"])
def test_when_the_run_waits(values, facts, needed):
    assert certbot.dns_wait_needed(make_config(**values), facts, NOW) is needed


def test_after_the_wait_the_same_stop_says_it_waited():
    cfg = make_config(wait_for_dns="300")
    with pytest.raises(CertbotError) as waited:
        build_plan(cfg, make_facts(domain_addresses=(), dns_waited=300), CTX)
    with pytest.raises(CertbotError) as plain:
        build_plan(make_config(), make_facts(domain_addresses=()), CTX)
    assert str(waited.value) == str(plain.value).replace(
        "(no address found from this server)",
        "(no address found from this server) after waiting 300 s for it (ACTVT_WAIT_FOR_DNS=300)")
    with pytest.raises(CertbotError) as dry:  # a dry run did not wait: it says a real run would
        build_plan(cfg, make_facts(domain_addresses=()), CTX)
    assert "(a real run first waits up to 300 s for it: ACTVT_WAIT_FOR_DNS)" in str(dry.value)


class Out:
    def __init__(self):
        self.lines = []

    def progress(self, text):
        self.lines.append(text)


def test_a_run_waits_and_plans_with_the_addresses_found_a_dry_run_does_not_wait(monkeypatch):
    calls = []

    def fake_wait(domain, bound, say):
        calls.append((domain, bound))
        say("waited")
        return ("203.0.113.7",), 45

    monkeypatch.setattr(certbot, "wait_for_dns", fake_wait)
    cfg, facts, out = make_config(wait_for_dns="300"), make_facts(domain_addresses=()), Out()
    assert install.wait_for_dns(cfg, facts, out, dry_run=True) is facts and calls == [] and out.lines == []
    after = install.wait_for_dns(cfg, facts, out, dry_run=False)
    assert calls == [(DOMAIN, 300)] and out.lines == ["waited"]
    assert after == dataclasses.replace(facts, domain_addresses=("203.0.113.7",), dns_waited=45)
    assert build_plan(cfg, after, Context(version="1.0.0", now=CTX.now)).steps  # the certificate is planned


@pytest.mark.parametrize("raw", ["forever", "-1", "86401", "5m", "1.5"])
def test_a_bad_value_is_one_line_exit_2_and_nothing_written(tmp_path, raw):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    before = tree_digest(tmp_path)
    code, out = run_cli(["--root", str(tmp_path), "--yes"], {"ACTVT_WAIT_FOR_DNS": raw})
    assert code == 2 and out == ""
    assert tree_digest(tmp_path) == before


def test_help_names_the_variable(capsys):
    code, _ = run_cli(["--help"])
    out = capsys.readouterr().out
    assert code == 0 and "ACTVT_WAIT_FOR_DNS  (default: 0)" in out
    assert "a whole number of seconds from 0 (do not wait) to 86400" in out
