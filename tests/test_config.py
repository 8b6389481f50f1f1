"""Every ACTVT_* variable: defaults, accepted values, refused values and the error line."""

import pytest

from installer.core import config
from installer.core.errors import ConfigError

BASE = {"ACTVT_DOMAIN": "monitor.example.com", "ACTVT_EMAIL": "admin@example.com"}

# name -> (accepted raw -> parsed value, refused raws)
CASES = {
    "ACTVT_DOMAIN": ({"Monitor.Example.COM.": "monitor.example.com", "a-1.b2.io": "a-1.b2.io",
                      ("a" * 63 + ".") * 3 + "b" * 61: ("a" * 63 + ".") * 3 + "b" * 61},
                     ["bad_domain!", "localhost", "-a.example.com", "a-.example.com", "1.2.3.4",
                      "a..b.com", ("a" * 63 + ".") * 4 + "com", "x" * 64 + ".com", "exa mple.com"]),
    "ACTVT_EMAIL": ({"a.b+c@example.co.uk": "a.b+c@example.co.uk"},
                    ["nope", "a@b", "@example.com", "a@@example.com", "a b@example.com", "a@exa_mple.com"]),
    "ACTVT_INSTALL_MODE": ({"auto": "auto", "Standalone": "standalone", "PROXY": "proxy"}, ["nginx", "both", "1"]),
    "ACTVT_VECTOR_PORT": ({"1": 1, "4096": 4096, "65535": 65535}, ["0", "65536", "-1", "80a", "4096.0", "99999"]),
    "ACTVT_MTLS_CA_DAYS": ({"1": 1, "36500": 36500}, ["0", "36501", "-5", "1.5", "ten"]),
    "ACTVT_MTLS_CLIENT_DAYS": ({"90": 90, "3650": 3650}, ["0", "3651", "x"]),
    "ACTVT_MTLS_CLIENT_CN": ({"actvt-client-002": "actvt-client-002", "A.b_c-9": "A.b_c-9", "x" * 64: "x" * 64},
                             ["x/O=Evil", "../x", "a b", "$(id)", "x" * 65, "-lead", ".hidden"]),
    "ACTVT_MTLS_KEY_TYPE": ({"RSA": "rsa", "ecdsa": "ecdsa"}, ["dsa", "ed25519"]),
    "ACTVT_NGINX_WEBROOT": ({"/srv/www/": "/srv/www", "/var/www/html": "/var/www/html"},
                            ["relative/path", "/var/../etc", ""]),
    "ACTVT_NON_INTERACTIVE": ({"auto": None, "YES": True, "0": False}, ["maybe", "ture"]),
    "ACTVT_MTLS_CA_FILE": ({"/etc/actvt/fleet-ca.pem": "/etc/actvt/fleet-ca.pem"}, ["fleet-ca.pem", "/etc/$x.pem"]),
    "ACTVT_MTLS_CRL_FILE": ({"/etc/actvt/fleet-crl.pem": "/etc/actvt/fleet-crl.pem"}, ["crl.pem", "/etc/x\ty"]),
    "ACTVT_ACME_SERVER": ({"staging": config.ACME_DIRECTORIES["staging"],
                           "Production": config.ACME_DIRECTORIES["production"],
                           "https://acme:14000/dir": "https://acme:14000/dir"},
                          ["acme:14000/dir", "ftp://x/dir", "stage"]),
    "ACTVT_VECTOR_VERSION": ({"0.50.0-1": "0.50.0-1", "0.51.1-1": "0.51.1-1"}, ["latest", "0.50 0", "; rm"]),
    "ACTVT_VECTOR_APT_URL": ({"http://mirror/vector/": "http://mirror/vector/"}, ["mirror/vector", "file:///x"]),
    "ACTVT_VECTOR_YUM_URL": ({"https://m/yum/": "https://m/yum/"}, ["yum"]),
    "ACTVT_VECTOR_KEY_URL": ({"http://mirror/key.asc": ("http://mirror/key.asc",),
                              " http://m/a.asc, https://m/b.gpg  http://m/c": ("http://m/a.asc", "https://m/b.gpg",
                                                                            "http://m/c")},
                             ["key.asc", "http://m/a.asc key.asc", " , "]),
    "ACTVT_VECTOR_KEY_FINGERPRINTS": (
        {"5f1e256061d813b125e156e8e6266d4ac0962c7d": ("5F1E256061D813B125E156E8E6266D4AC0962C7D",),
         "5F1E 2560 61D8 13B1 25E1  56E8 E626 6D4A C096 2C7D": ("5F1E256061D813B125E156E8E6266D4AC0962C7D",),
         "0x5F1E256061D813B125E156E8E6266D4AC0962C7D D75CEA17048B9ACBF186794B32637D44F14F620E":
             ("5F1E256061D813B125E156E8E6266D4AC0962C7D", "D75CEA17048B9ACBF186794B32637D44F14F620E"),
         "5F1E256061D813B125E156E8E6266D4AC0962C7D,D75C EA17 048B 9ACB F186  794B 3263 7D44 F14F 620E":
             ("5F1E256061D813B125E156E8E6266D4AC0962C7D", "D75CEA17048B9ACBF186794B32637D44F14F620E"),
         "a" * 64: ("A" * 64,)},
        ["C0962C7D", "5F1E256061D813B125E156E8E6266D4AC0962C7", "5F1E256061D813B125E156E8E6266D4AC0962C7DX",
         "G" * 40, ", ,", "5F1E 2560 61D8 13B1 25E1  56E8 E626 6D4A C096 2C7D 1234"]),
    "ACTVT_PACKAGE_LOCK_TIMEOUT": ({"0": 0, "20": 20, "86400": 86400}, ["-1", "86401", "1.5", "10s", "ten"]),
    "ACTVT_WAIT_FOR_DNS": ({"0": 0, "300": 300, " 600 ": 600, "86400": 86400}, ["-1", "86401", "1.5", "5m", "forever"]),
}
BOOLEANS = [v.name for v in config.VARIABLES if v.parse is config.parse_bool]


#: what a variable is only allowed together with
NEEDS = {"ACTVT_MTLS_CRL_FILE": {"ACTVT_MTLS_CA_FILE": "/etc/actvt/fleet-ca.pem"}}


def test_a_trusted_ca_turns_mtls_on_and_conflicts_are_one_line_each():
    assert config.parse({**BASE, "ACTVT_MTLS_CA_FILE": "/etc/actvt/ca.pem"}).enable_mtls is True
    for env, start in (({"ACTVT_MTLS_CA_FILE": "/x.pem", "ACTVT_ENABLE_MTLS": "no"}, "ACTVT_MTLS_CA_FILE: "),
                       ({"ACTVT_MTLS_CRL_FILE": "/x.pem"}, "ACTVT_MTLS_CRL_FILE: ")):
        with pytest.raises(ConfigError) as info:
            config.parse({**BASE, **env})
        assert [line[:len(start)] for line in info.value.problems] == [start] and "allowed: " in info.value.problems[0]


def test_every_variable_has_cases():
    assert set(CASES) | set(BOOLEANS) == set(config.BY_NAME)


def test_defaults_match_the_bash_installer():
    cfg = config.parse(BASE)
    assert (cfg.install_mode, cfg.vector_port, cfg.nginx_webroot) == ("auto", 4096, "/var/www/html")
    assert (cfg.force_standalone, cfg.configure_firewall, cfg.reinstall_vector) == (False, True, False)
    assert (cfg.enable_gpu, cfg.reuse_cert, cfg.continue_without_dns, cfg.enable_mtls) == (True, True, False, False)
    assert (cfg.mtls_ca_days, cfg.mtls_client_days, cfg.mtls_client_cn) == (3650, 365, "actvt-client-001")
    assert (cfg.reuse_mtls_ca, cfg.regen_client_cert, cfg.non_interactive) == (True, False, None)
    assert cfg.acme_server == "https://acme-v02.api.letsencrypt.org/directory"
    assert cfg.vector_version == "0.50.0-1" and cfg.bake is False
    assert (cfg.vector_key_url, cfg.vector_key_fingerprints, cfg.package_lock_timeout) == (None, None, 600)
    assert cfg.explicit == frozenset(BASE)


@pytest.mark.parametrize("name,raw,expected", [(n, r, e) for n, (ok, _) in CASES.items() for r, e in ok.items()])
def test_accepted(name, raw, expected):
    cfg = config.parse({**BASE, **NEEDS.get(name, {}), name: raw})
    assert getattr(cfg, config.BY_NAME[name].field) == expected
    assert cfg.is_set(name)


@pytest.mark.parametrize("name,raw", [(n, r) for n, (_, bad) in CASES.items() for r in bad if r != ""])
def test_refused_with_one_line_naming_the_variable(name, raw):
    with pytest.raises(ConfigError) as info:
        config.parse({**BASE, **NEEDS.get(name, {}), name: raw})
    assert len(info.value.problems) == 1
    line = info.value.problems[0]
    assert line.startswith(f"{name}: ") and "allowed: " in line and "\n" not in line
    assert config.BY_NAME[name].allowed in line


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize("raw,expected", [("yes", True), ("Y", True), ("TRUE", True), ("1", True),
                                          ("no", False), ("n", False), ("False", False), ("0", False)])
def test_booleans(name, raw, expected):
    assert getattr(config.parse({**BASE, name: raw}), config.BY_NAME[name].field) is expected


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize("raw", ["ture", "yess", "on", "2", "nope"])
def test_boolean_typos_are_errors_not_no(name, raw):
    with pytest.raises(ConfigError) as info:
        config.parse({**BASE, name: raw})
    assert info.value.problems[0].startswith(f"{name}: ")


def test_required_variables():
    with pytest.raises(ConfigError) as info:
        config.parse({})
    assert [p.split(":")[0] for p in info.value.problems] == ["ACTVT_DOMAIN", "ACTVT_EMAIL"]
    assert config.parse({}, require_install_fields=False).domain is None


def test_every_problem_is_reported_once():
    with pytest.raises(ConfigError) as info:
        config.parse({**BASE, "ACTVT_VECTOR_PORT": "0", "ACTVT_ENABLE_MTLS": "ture"})
    assert [p.split(":")[0] for p in info.value.problems] == ["ACTVT_VECTOR_PORT", "ACTVT_ENABLE_MTLS"]


def test_empty_value_means_unset():
    assert config.parse({**BASE, "ACTVT_VECTOR_PORT": ""}).vector_port == 4096
    with pytest.raises(ConfigError) as info:
        config.parse({**BASE, "ACTVT_DOMAIN": " "})
    assert info.value.problems == ["ACTVT_DOMAIN: is required and not set; allowed: "
                                   + config.BY_NAME["ACTVT_DOMAIN"].allowed]


def test_unknown_variables_get_a_suggestion():
    warnings = config.unknown_variables({"ACTVT_DOMIAN": "x", "ACTVT_ENABLE_MTL": "y", "ACTVT_ZZZ": "1", "PATH": "/"})
    assert warnings == (
        "unknown variable ACTVT_DOMIAN is ignored (did you mean ACTVT_DOMAIN?)",
        "unknown variable ACTVT_ENABLE_MTL is ignored (did you mean ACTVT_ENABLE_MTLS?)",
        "unknown variable ACTVT_ZZZ is ignored",
    )


def test_help_and_table_list_every_variable():
    text, table = config.help_text(), config.markdown_table()
    for var in config.VARIABLES:
        assert var.name in text and f"`{var.name}`" in table


def test_email_is_masked():
    assert config.mask_email("admin@example.com") == "a***@example.com"
    assert "admin" not in config.mask_email("admin@example.com")
