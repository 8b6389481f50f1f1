"""The RHEL family at plan level (issue 21): the package manager each system's real os-release leads to
(the files the RHEL-family harness images carry, tests/integration/docker/rpm/os), and certbot's
renewal timer, which EPEL's package does not enable."""
import dataclasses
from pathlib import Path

import pytest

from installer.concerns import certbot
from installer.core.actions import Service
from installer.core.facts import package_manager_for, parse_os_release
from installer.core.context import Context
from installer.plans.registry import build_plan

from helpers import make_config, make_facts

OS_DIR = Path(__file__).resolve().parent / "integration" / "docker" / "rpm" / "os"
AMAZON_LINUX_2 = 'NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n'


@pytest.mark.parametrize("name,has_dnf,manager", [
    ("rocky9", True, "dnf"), ("alma9", True, "dnf"), ("rocky8", True, "dnf"), ("amzn2023", True, "dnf"),
    ("rocky8", False, "yum"),
])
def test_package_manager_of_the_harness_systems(name, has_dnf, manager):
    assert package_manager_for(parse_os_release((OS_DIR / name).read_text()), has_dnf) == manager


def test_amazon_linux_2_has_only_yum():
    assert package_manager_for(parse_os_release(AMAZON_LINUX_2), has_dnf=False) == "yum"


def _timers(manager):
    facts = dataclasses.replace(make_facts(), os=parse_os_release((OS_DIR / "rocky9").read_text()),
                                package_manager=manager)
    if manager == "apt":
        facts = make_facts()
    plan = build_plan(make_config(), facts, Context(version="1.1.0", now="2026-06-01T00:00:00Z"))
    return [action for action in plan.actions
            if isinstance(action, Service) and action.name in certbot.RENEWAL_TIMERS]


def test_the_family_enables_epel_s_renewal_timer():
    timers = _timers("dnf")
    assert [(t.name, t.enabled, t.running) for t in timers] == [("certbot-renew.timer", True, True)]


def test_debian_s_package_enables_its_own_timer():
    assert _timers("apt") == []
