"""Vector planners: config + fake facts -> expected actions; the rendered vector.toml (parsed as Vector
would, checked against the metrics contract, its VRL compiled when the VRL compiler is installed);
escaping of hostile values; the empty plan after a run."""

import dataclasses
import itertools
import os
import re
import subprocess
import sys
import tomllib

import pytest

from installer.engine import engine
from installer.core import packaging, paths
from installer.concerns import vector
from installer.core.actions import Absent, Keyring, Packages, Plan, Service
from installer.core.facts import ProbeResult, gather
from installer.core.paths import Root
from installer.plans.registry import Context, Decisions

from helpers import GPU_CONTRACT, HOST_CONTRACT, RecordingRunner, make_config
from helpers import make_facts as _make_facts

CTX = Context(version="1.0.0", now="2026-11-26T00:00:00Z")
STANDALONE = Decisions(mode="standalone", webserver="none")
PROXY = Decisions(mode="proxy", webserver="nginx")
USER_OK = {"vector_user": ProbeResult(0, "vector:x:999:999::/var/lib/vector:/usr/sbin/nologin\n")}
USER_MISSING = {"vector_user": ProbeResult(2, "")}
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration", "vector_standin", "vector")

#: host metrics, system info and GPU: every message the installed programs can make
CONTRACT = dict(HOST_CONTRACT, **GPU_CONTRACT)


def make_facts(package_manager="apt", **values):
    """helpers.make_facts with any package manager."""
    return dataclasses.replace(_make_facts(**values), package_manager=package_manager)


def interpolate(text, env=None):
    """Vector's environment interpolation ($$ is a literal $; $NAME / ${NAME} expand), then TOML."""
    errors = []

    def repl(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(2)
        if name not in (env or {}):
            errors.append(name)
            return ""
        return env[name]

    out = re.sub(r"\$\$|\$\{(\w+)[^}]*\}|\$(\w+)", repl, text)
    assert errors == [], f"the config would expand environment variables: {errors}"
    return out


def load(text):
    return tomllib.loads(interpolate(text))


def render(mode="standalone", gpu=False, **values):
    return vector.render_config(make_config(**values), mode, gpu)


def remaps(cfg):
    return {name: comp["source"] for name, comp in cfg["transforms"].items() if comp["type"] == "remap"}


# --- the package ----------------------------------------------------------------------------------


def package_plan(cfg=None, ctx=CTX, **facts):
    facts.setdefault("probes", USER_OK)
    steps = vector.plan_vector_package(cfg or make_config(), make_facts(**facts), STANDALONE, ctx)
    return [action for step in steps for action in step.actions]


DATADOG_APT = tuple("https://keys.datadoghq.com/DATADOG_APT_KEY_%s.public" % name
                    for name in ("CURRENT", "C0962C7D", "F14F620E", "06462314"))


def test_fresh_apt_host_gets_the_signed_repository_and_the_pinned_package():
    actions = package_plan(probes=USER_MISSING)
    keyring, listing, update, package, user = actions
    assert keyring == Keyring(vector.keyring_path(make_config(), "apt"), DATADOG_APT,
                              ("5F1E256061D813B125E156E8E6266D4AC0962C7D", "D75CEA17048B9ACBF186794B32637D44F14F620E",
                               "D18886567EABAD8B2D2526900D826EB906462314"),
                              reason=keyring.reason, hint=keyring.hint)
    assert keyring.path.startswith("/usr/share/keyrings/actvt-vector-") and keyring.path.endswith(".gpg")
    assert listing.path == "/etc/apt/sources.list.d/vector.list" and listing.mode == 0o644
    assert f"deb [signed-by={keyring.path}] https://apt.vector.dev/ stable vector-0\n" in listing.content.decode()
    assert update.argv[:2] == ("apt-get", "update") and update.when_changed == ()  # installing: always
    assert update.locks == packaging.APT_LISTS
    assert package == Packages("apt", ("vector=0.50.0-1",), reason=package.reason)
    assert user.argv[:2] == ("sh", "-c") and "useradd --system" in user.argv[2]
    assert "getent passwd vector >/dev/null && exit 0" in user.argv[2]  # harmless after the package made it


def test_mirror_urls_keys_and_version_are_used():
    cfg = make_config(vector_apt_url="http://mirror.internal:3142/vector/", vector_version="0.49.0-1",
                      vector_key_url="http://mirror.internal/key.asc",
                      vector_key_fingerprints="0123456789abcdef0123456789abcdef01234567")
    keyring, listing, _update, package = package_plan(cfg)
    assert keyring.urls == ("http://mirror.internal/key.asc",) and keyring.path == vector.keyring_path(cfg, "apt")
    assert keyring.fingerprints == ("0123456789ABCDEF0123456789ABCDEF01234567",)
    assert "] http://mirror.internal:3142/vector/ stable vector-0\n" in listing.content.decode()
    assert package.names == ("vector=0.49.0-1",)


def test_the_keyring_is_named_by_its_urls_and_pinned_keys():
    """Another mirror, or a pinned set changed in a newer installer, makes another keyring (and so
    another list line, and apt-get update)."""
    base = make_config()
    names = {vector.keyring_path(cfg, "apt") for cfg in (
        base, make_config(vector_key_url="http://m/key.asc"),
        make_config(vector_key_fingerprints="0123456789abcdef0123456789abcdef01234567"),
        make_config(vector_key_url=" ".join(DATADOG_APT[:2])))}
    assert len(names) == 4
    assert vector.keyring_path(base, "apt") == vector.keyring_path(make_config(), "apt")  # stable between runs


def test_apt_source_line_cannot_be_bent_by_the_url():
    cfg = dataclasses.replace(make_config(), vector_apt_url="https://m.example/a#b[c] d]")
    line = [line for line in vector.apt_list_text(cfg).decode().splitlines() if line.startswith("deb ")][0]
    assert line.endswith(" stable vector-0")
    url = line.split("] ", 1)[1].rsplit(" stable vector-0", 1)[0]
    assert url == "https://m.example/a%23b%5Bc%5D%20d%5D"


def test_keyrings_of_an_earlier_run_are_removed():
    old = "/usr/share/keyrings/actvt-vector-0123456789ab.asc"
    actions = package_plan(files={old: b"old key", "/usr/share/keyrings/debian-archive-keyring.gpg": b"x"})
    assert Absent(old, reason=actions[1].reason) == actions[1]
    assert not any(getattr(a, "path", "").endswith("debian-archive-keyring.gpg") for a in actions)


@pytest.mark.parametrize("manager", ["dnf", "yum"])
def test_rpm_hosts_get_a_checked_repo_file(manager):
    actions = package_plan(package_manager=manager)
    keyring, repo, record, imported, package = actions
    # rpm trusts the pinned keys through the installer's own import, recorded for uninstall (test_rpm_keys.py)
    assert record.path == "/var/lib/actvt/rpm-keys.added" and imported.argv == ("rpm", "--import", keyring.path)
    text = repo.content.decode()
    assert repo.path == "/etc/yum.repos.d/vector.repo"
    # dnf and yum import the keys we checked, from the file: never one they fetch on their own
    assert keyring.armored and keyring.path.startswith("/etc/pki/rpm-gpg/actvt-vector-")
    assert keyring.urls[0] == "https://keys.datadoghq.com/DATADOG_RPM_KEY_CURRENT.public"
    assert "7408BFD56BC5BF0C361AAAE85D88EEA3B01082D3" in keyring.fingerprints
    for line in ("[vector]", "gpgcheck=1", "repo_gpgcheck=1", "enabled=1", f"gpgkey=file://{keyring.path}",
                 "baseurl=https://yum.vector.dev/stable/vector-0/$basearch/"):
        assert line in text.splitlines()
    assert package == Packages(manager, ("vector=0.50.0-1",), reason=package.reason)


def test_installed_vector_is_left_alone():
    assert package_plan(packages={"vector": "0.50.0-1"}) == []


def test_installed_vector_of_another_version_is_kept_and_said():
    facts = make_facts(packages={"vector": "0.51.1-1"}, probes=USER_OK)
    assert vector.plan_vector_package(make_config(), facts, STANDALONE, CTX) == []
    [note] = vector.notes(make_config(), facts, STANDALONE, CTX)
    assert "0.51.1-1" in note and "newer" in note and "ACTVT_REINSTALL_VECTOR=yes" in note


def test_reinstall_on_apt_reinstalls_the_pinned_version():
    actions = package_plan(make_config(reinstall_vector="yes"), packages={"vector": "0.51.1-1"})
    _keyring, listing, update, install = actions
    assert update.when_changed == (listing.path, actions[0].path)  # installed: update only on change
    assert install.argv[:5] == ("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y")
    assert install.locks == packaging.APT_INSTALL
    assert {"--reinstall", "--allow-downgrades", "Dpkg::Options::=--force-confold"} <= set(install.argv)
    assert install.argv[-1] == "vector=0.50.0-1"


def test_reinstall_answer_from_the_prompt_is_used_unless_the_variable_is_set():
    ctx = dataclasses.replace(CTX, answers={"ACTVT_REINSTALL_VECTOR": True})
    assert package_plan(ctx=ctx, packages={"vector": "0.50.0-1"}) != []
    assert package_plan(make_config(reinstall_vector="no"), ctx=ctx, packages={"vector": "0.50.0-1"}) == []


@pytest.mark.parametrize("installed,verb", [("0.50.0-1", "reinstall"), ("0.51.0-1", "downgrade"),
                                            ("0.9.1-1", "install")])
def test_reinstall_on_dnf_picks_the_verb(installed, verb):
    actions = package_plan(make_config(reinstall_vector="yes"), package_manager="dnf",
                           packages={"vector": installed})
    assert actions[-1].argv == ("dnf", verb, "-y", "vector-0.50.0-1")


def test_user_is_ensured_only_when_missing():
    assert package_plan(packages={"vector": "0.50.0-1"}, probes=USER_MISSING)[-1].argv[0] == "sh"
    assert package_plan(packages={"vector": "0.50.0-1"}, probes=USER_OK) == []


def test_unknown_package_manager_plans_no_package():
    assert package_plan(package_manager=None) == []


def test_version_order():
    assert vector.version_key("0.50.0-1") < vector.version_key("0.50.1-1") < vector.version_key("0.100.0-1")
    assert vector.version_key("1:0.5-1") == vector.version_key("0.5-1")


# --- the configuration ----------------------------------------------------------------------------


COMBOS = list(itertools.product(["standalone", "proxy"], ["yes", "no"], [True, False]))


@pytest.mark.parametrize("mode,mtls,gpu", COMBOS)
def test_rendered_config_parses_and_has_the_contract(mode, mtls, gpu):
    text = render(mode, gpu, enable_mtls=mtls)
    assert re.search(r"(?<!\$)\$(?!\$)", text.replace("$$", "")) is None  # every $ is doubled
    cfg = load(text)
    sink = cfg["sinks"]["websocket_out"]
    assert sink["type"] == "websocket_server" and sink["encoding"]["codec"] == "json"
    assert sink["address"] == ("127.0.0.1:4096" if mode == "proxy" else "0.0.0.0:4096")
    tls = sink["tls"]
    assert tls["enabled"] is True
    assert (tls["crt_file"], tls["key_file"]) == ("/etc/vector/certs/server.crt", "/etc/vector/certs/server.key")
    if mtls == "yes":
        trusted = "/etc/vector/certs/proxy/ca.crt" if mode == "proxy" else "/etc/vector/certs/mtls/ca.crt"
        assert tls["ca_file"] == trusted and tls["verify_certificate"] is True
    else:
        assert "ca_file" not in tls and "verify_certificate" not in tls
    assert cfg["api"] == {"enabled": True}
    metrics = cfg["sources"]["system_metrics"]
    assert metrics["type"] == "host_metrics" and metrics["scrape_interval_secs"] == 1
    assert set(metrics["collectors"]) == {"cpu", "memory", "disk", "filesystem", "network", "host", "load"}
    assert cfg["sources"]["system_info"]["scheduled"]["exec_interval_secs"] == 15
    assert ("gpu_metrics" in cfg["sources"]) == gpu
    if gpu:  # a scheduled nvidia-smi slower than its interval would be killed: one streaming process
        source = cfg["sources"]["gpu_metrics"]
        assert source["mode"] == "streaming" and "scheduled" not in source and "--loop=1" in source["command"]
        assert source["streaming"] == {"respawn_on_exit": True, "respawn_interval_secs": 5}
    # every input names a component, and the sink sends every formatting transform
    names = set(cfg["sources"]) | set(cfg["transforms"])
    for comp in list(cfg["transforms"].values()) + [sink]:
        assert set(comp["inputs"]) <= names
    assert set(sink["inputs"]) == {name for name in cfg["transforms"] if name.startswith("format_")}
    # every metric_type of the contract (the GPU ones only with a GPU) is made by some transform
    made = set()
    for source in remaps(cfg).values():
        made |= set(re.findall(r'\.metric_type = "(\w+)"', source))
    expected = {name for name in CONTRACT if gpu or not name.startswith("gpu_")}
    assert made == expected


def test_vector_050_facts_are_applied():
    sources = "\n".join(line for source in remaps(load(render(gpu=True))).values()
                        for line in source.splitlines() if not line.lstrip().startswith("#"))
    assert "host_" not in sources.replace("get_hostname", "")  # no host_ prefixed metric names
    assert "get_env_var" not in sources and "get_hostname!()" in sources
    assert '"network_transmit_packets_drop_total"' in sources and "network_receive_drop" not in sources
    assert "strip_whitespace" in sources and "?? 0.0" in sources


def test_gpu_sources_only_with_a_gpu_and_the_choice():
    cfg = make_config()
    with_gpu = make_facts(gpu=True)
    config_text = lambda c, f, ctx=CTX: vector.plan_vector_config(c, f, STANDALONE, ctx)[0].actions[0].content
    assert b"nvidia-smi" in config_text(cfg, with_gpu)
    assert b"nvidia-smi" not in config_text(cfg, make_facts(gpu=False))
    assert b"nvidia-smi" not in config_text(make_config(enable_gpu="no"), with_gpu)
    no_answer = dataclasses.replace(CTX, answers={"ACTVT_ENABLE_GPU": False})
    assert b"nvidia-smi" not in config_text(cfg, with_gpu, no_answer)
    assert b"nvidia-smi" in config_text(make_config(enable_gpu="yes"), with_gpu, no_answer)  # env wins
    assert "GPU metrics are off" in vector.notes(make_config(enable_gpu="no"), with_gpu, STANDALONE, CTX)[0]


def test_config_files_and_reasons():
    step, = vector.plan_vector_config(make_config(enable_mtls="yes"), make_facts(), PROXY, CTX)
    config_file, defaults = step.actions
    assert (config_file.path, config_file.mode, config_file.owner, config_file.group) == \
        ("/etc/vector/vector.toml", 0o644, "root", "root")
    assert "127.0.0.1" in config_file.reason and "mTLS" in config_file.reason
    assert (defaults.path, defaults.mode) == ("/etc/default/vector", 0o644)
    assert defaults.content.decode().splitlines()[-1] == "VECTOR_CONFIG=/etc/vector/vector.toml"


def test_port_is_rendered():
    assert load(render(vector_port="9000"))["sinks"]["websocket_out"]["address"] == "0.0.0.0:9000"


@pytest.mark.parametrize("hostile", [
    'evil"]\n[api]\nenabled = false', "a\\b", "$HOME${PATH}$$", "'''", "tab\there", "\x01\x7f", "ünï.example",
])
def test_hostile_values_are_escaped(hostile):
    cfg = dataclasses.replace(make_config(), domain=hostile)
    parsed = load(vector.render_config(cfg, "standalone", False))
    command = parsed["sources"]["system_info"]["command"]
    assert command[-1] == hostile  # the value round-trips, as data, through Vector's $ expansion and TOML
    assert command[:2] == ["/bin/sh", "-c"] and command[3] == "actvt-system-info"
    assert parsed["api"] == {"enabled": True}


def test_toml_string_escapes():
    for value in ['"', "\\", "\n", "$", "${X}", "\x00", "plain"]:
        assert tomllib.loads("v = " + vector.toml_string(value))["v"].replace("$$", "$") == value


def test_system_info_script_prints_the_fields_and_treats_the_domain_as_data(tmp_path):
    marker = tmp_path / "pwned"
    domain = f"x; touch {marker}; $(touch {marker})"
    result = subprocess.run(["/bin/sh", "-c", vector.SYSTEM_INFO_SCRIPT, "actvt-system-info", domain],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not marker.exists()
    fields = result.stdout.rstrip("\n").split("\t")
    assert len(fields) == 5 and fields[2] == domain and fields[0] and fields[1]


# --- /etc/default/vector ------------------------------------------------------------------------


PACKAGE_DEFAULTS = (b"# This file can theoretically contain a bunch of environment variables\n"
                    b"# for Vector.\nVECTOR_CONFIG=/etc/vector/vector.yaml\nHTTPS_PROXY=http://proxy:3128\n")


def test_defaults_keep_the_package_lines_and_point_at_our_file():
    text = vector.defaults_text(PACKAGE_DEFAULTS).decode()
    assert "HTTPS_PROXY=http://proxy:3128" in text and "bunch of environment variables" in text
    assert [line for line in text.splitlines() if "VECTOR_CONFIG" in line and not line.startswith("#")] == \
        ["VECTOR_CONFIG=/etc/vector/vector.toml"]
    assert vector.defaults_text(text.encode()).decode() == text  # a re-run changes nothing
    assert vector.defaults_text(b"export VECTOR_CONFIG_DIR=/etc/vector/conf.d\n").decode().count("VECTOR_CONFIG") == 1
    assert vector.defaults_text(None).decode().endswith("VECTOR_CONFIG=/etc/vector/vector.toml\n")


# --- the service ----------------------------------------------------------------------------------


def test_service_restarts_on_its_inputs_and_waits_for_the_port():
    step, = vector.plan_vector_service(make_config(enable_mtls="yes", vector_port="9000"), make_facts(), STANDALONE, CTX)
    service, = step.actions
    assert isinstance(service, Service) and service.name == "vector" and service.wait_seconds == 30
    assert service.ports == (9000,)
    assert service.restart_when_changed == (paths.VECTOR_CONFIG, paths.VECTOR_DEFAULTS, paths.VECTOR_LIMITS,
                                            paths.SERVER_CERT, paths.SERVER_KEY, paths.CA_CERT)
    assert ("vector", "validate", "--no-environment", "/etc/vector/vector.toml") in service.diagnose
    step, = vector.plan_vector_service(make_config(), make_facts(), STANDALONE, CTX)
    assert paths.CA_CERT not in step.actions[0].restart_when_changed


# --- the stand-in's validate and the VRL compiler -------------------------------------------------


@pytest.mark.skipif(not os.path.exists(STANDIN), reason="Vector test double not present")
@pytest.mark.parametrize("mode,mtls,gpu", COMBOS)
def test_standin_vector_validates_the_rendered_config(tmp_path, mode, mtls, gpu):
    path = tmp_path / "vector.toml"
    path.write_text(render(mode, gpu, enable_mtls=mtls))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTOR_")}
    result = subprocess.run([sys.executable, STANDIN, "validate", "--no-environment", str(path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _vrl():
    return pytest.importorskip("vrl_python", reason="VRL compiler (pip install vrl-python) not installed")


def test_every_vrl_program_compiles():
    vrl = _vrl()
    for name, source in remaps(load(render(gpu=True))).items():
        diagnostic = vrl.VRLRuntime.check_syntax(source)
        assert diagnostic is None, f"{name}: {diagnostic.formatted_message}"


def _run(vrl, source, event):
    try:
        return vrl.VRLRuntime(None).execute(source, event).processed_event
    except RuntimeError as exc:
        if "aborted" in str(exc):
            return None
        raise


HOST_METRICS = [  # (event after metric_to_log, metric_type, expected fields)
    ({"name": "memory_used_bytes", "namespace": "host", "tags": {"collector": "memory"}, "host": "srv",
      "gauge": {"value": 1024.0}}, "memory_used", {"value": 1024.0}),
    ({"name": "memory_total_bytes", "tags": {}, "host": "srv", "gauge": {"value": 4096.0}}, "memory_total",
     {"value": 4096.0}),
    ({"name": "cpu_seconds_total", "tags": {"cpu": "0", "mode": "idle"}, "host": "srv", "counter": {"value": 9.5}},
     "cpu_idle", {"value": 9.5, "cpu": "0"}),
    ({"name": "cpu_seconds_total", "tags": {"cpu": "1", "mode": "user"}, "host": "srv", "counter": {"value": 2.0}},
     "cpu_total", {"value": 2.0, "cpu": "1"}),
    ({"name": "logical_cpus", "tags": {}, "host": "srv", "gauge": {"value": 8.0}}, "cpu_logical_count", {"value": 8.0}),
    ({"name": "physical_cpus", "tags": {}, "host": "srv", "gauge": {"value": 4.0}}, "cpu_physical_count",
     {"value": 4.0}),
    ({"name": "network_receive_bytes_total", "tags": {"device": "eth0"}, "host": "srv", "counter": {"value": 1.0}},
     "network_rx_bytes", {"value": 1.0, "interface": "eth0"}),
    ({"name": "network_transmit_bytes_total", "tags": {"device": "eth0"}, "counter": {"value": 2.0}},
     "network_tx_bytes", {"value": 2.0, "interface": "eth0"}),
    ({"name": "network_receive_packets_total", "tags": {"device": "eth0"}, "counter": {"value": 3.0}},
     "network_rx_packets", {"value": 3.0}),
    ({"name": "network_transmit_packets_total", "tags": {"device": "eth0"}, "counter": {"value": 4.0}},
     "network_tx_packets", {"value": 4.0}),
    ({"name": "network_receive_errs_total", "tags": {"device": "eth0"}, "counter": {"value": 5.0}},
     "network_rx_errors", {"value": 5.0}),
    ({"name": "network_transmit_errs_total", "tags": {"device": "eth0"}, "counter": {"value": 6.0}},
     "network_tx_errors", {"value": 6.0}),
    ({"name": "network_transmit_packets_drop_total", "tags": {"device": "eth0"}, "counter": {"value": 7.0}},
     "network_tx_dropped", {"value": 7.0, "interface": "eth0"}),
    ({"name": "filesystem_total_bytes", "tags": {"device": "/dev/sda1", "filesystem": "ext4", "mountpoint": "/"},
      "gauge": {"value": 10.0}}, "disk_total", {"value": 10.0, "filesystem": "ext4", "device": "/dev/sda1",
                                                "mountpoint": "/"}),
    ({"name": "filesystem_used_bytes", "tags": {"device": "/dev/sda1", "filesystem": "ext4", "mountpoint": "/"},
      "gauge": {"value": 4.0}}, "disk_used", {"value": 4.0}),
    ({"name": "filesystem_free_bytes", "tags": {"device": "/dev/sda1", "filesystem": "ext4", "mountpoint": "/"},
      "gauge": {"value": 6.0}}, "disk_free", {"value": 6.0}),
    ({"name": "disk_read_bytes_total", "tags": {"device": "sda"}, "counter": {"value": 512.0}}, "disk_read_bytes",
     {"value": 512.0, "device": "sda"}),
    ({"name": "disk_written_bytes_total", "tags": {"device": "sda"}, "counter": {"value": 1024.0}},
     "disk_write_bytes", {"value": 1024.0, "device": "sda"}),
    ({"name": "uptime", "tags": {}, "gauge": {"value": 100.0}}, "uptime", {"value": 100.0}),
    ({"name": "boot_time", "tags": {}, "gauge": {"value": 1.7e9}}, "boot_time", {"value": 1.7e9}),
    ({"name": "load1", "tags": {}, "gauge": {"value": 0.5}}, "load_1min", {"value": 0.5}),
    ({"name": "load5", "tags": {}, "gauge": {"value": 0.25}}, "load_5min", {"value": 0.25}),
    ({"name": "load15", "tags": {}, "gauge": {"value": 0.125}}, "load_15min", {"value": 0.125}),
]


@pytest.mark.parametrize("event,metric_type,fields", HOST_METRICS, ids=[case[1] for case in HOST_METRICS])
def test_host_metrics_become_contract_messages(event, metric_type, fields):
    vrl = _vrl()
    source = remaps(load(render()))["format_host_metrics"]
    out = _run(vrl, source, event)
    assert out["metric_type"] == metric_type
    for key, value in fields.items():
        assert out[key] == value
    for key in CONTRACT[metric_type]:
        assert key in out
    assert out["host"] == event.get("host", out["host"]) and out["host"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", out["timestamp"])


def test_other_host_metrics_are_dropped():
    vrl = _vrl()
    source = remaps(load(render()))["format_host_metrics"]
    assert _run(vrl, source, {"name": "memory_swap_free_bytes", "tags": {}, "gauge": {"value": 1.0}}) is None


def test_system_info_message():
    vrl = _vrl()
    source = remaps(load(render()))["format_system_info"]
    out = _run(vrl, source, {"message": "Debian GNU/Linux 12 (bookworm)\tx86_64\tmonitor.example.com\t10.0.0.5\t",
                             "host": "srv"})
    assert {k: out[k] for k in CONTRACT["system_info"]} == {
        "os": "Debian GNU/Linux 12 (bookworm)", "arch": "x86_64", "domain": "monitor.example.com",
        "ipv4": "10.0.0.5", "ipv4_public": "unknown"}
    assert out["metric_type"] == "system_info" and out["host"] == "srv"


@pytest.mark.parametrize("line,expected", [
    (" 37, 1024, 24576, 55, 1500, 9501, 120.50, 450.00, 0, 0, 30, P2, NVIDIA GeForce RTX 4090",
     {"gpu_utilization": {"value": 37.0}, "gpu_memory": {"memory_used": 1024.0, "memory_total": 24576.0},
      "gpu_power": {"power_draw": 120.5, "power_limit": 450.0}, "gpu_fan_pstate": {"performance_state": "P2"},
      "gpu_clocks": {"clock_graphics": 1500.0, "clock_memory": 9501.0}, "gpu_temperature": {"value": 55.0}}),
    (" [N/A], 10, [N/A], [N/A], [N/A], [N/A], [N/A], [Not Supported], [N/A], [N/A], [N/A], [N/A], Tesla T4",
     {"gpu_utilization": {"value": 0.0}, "gpu_memory": {"memory_percent": 0.0},
      "gpu_power": {"power_percent": 0.0}, "gpu_fan_pstate": {"performance_state": "unknown", "fan_speed": 0.0}}),
])
def test_nvidia_smi_lines_become_gpu_messages(line, expected):
    vrl = _vrl()
    programs = remaps(load(render(gpu=True)))
    parsed = _run(vrl, programs["parse_gpu"], {"message": line, "host": "srv"})
    name = line.rsplit(",", 1)[1].strip()
    for metric_type, fields in expected.items():
        out = _run(vrl, programs[f"format_{metric_type}"], dict(parsed))
        assert out["metric_type"] == metric_type and out["gpu_name"] == name and "gpu" not in out
        for key in CONTRACT[metric_type]:
            assert key in out
        for key, value in fields.items():
            assert out[key] == pytest.approx(value) if isinstance(value, float) else out[key] == value
    assert _run(vrl, programs["parse_gpu"], {"message": "garbage", "host": "srv"}) is None


# --- after the run --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode,mtls,gpu", COMBOS)
def test_after_facts_give_an_empty_plan(tmp_path, mode, mtls, gpu):
    cfg = make_config(install_mode=mode, enable_mtls=mtls)
    decisions = Decisions(mode=mode, webserver="none")
    before = make_facts(gpu=gpu, probes={"vector_user": ProbeResult(2, "")},
                        files={paths.VECTOR_DEFAULTS: PACKAGE_DEFAULTS})
    root = tmp_path / "root"
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/vector").write_bytes(PACKAGE_DEFAULTS)

    def plan_for(facts):
        steps = [step for planner in vector.CONCERN.planners for step in planner.plan(cfg, facts, decisions, CTX)]
        return Plan(tuple(step for step in steps if step.actions))

    eng = engine.Engine(Root(str(root)), RecordingRunner(), manage_owner=False)
    eng.apply(eng.check(plan_for(before)))
    read = gather(Root(str(root)), {}, reads=vector.CONCERN.reads(None))
    after = dataclasses.replace(before, files=read.files, dirs=read.dirs, packages={"vector": "0.50.0-1"},
                                probes=USER_OK)
    assert vector.plan_vector_package(cfg, after, decisions, CTX) == []
    again = eng.check(plan_for(after))
    assert [(item.action.describe(), item.why) for item in again if item.status == engine.CHANGE] == []
