"""Adopting a server installed by the bash script (``curl -L https://actvt.io/install | bash``).

What that script left, and what happens to it here:

- ``/var/lib/actvt/install.state`` and ``/var/lib/actvt/domain``: when ``ACTVT_INSTALL_MODE``,
  ``ACTVT_ENABLE_MTLS``, ``ACTVT_MTLS_CLIENT_CN`` or ``ACTVT_DOMAIN`` are not given, their values are
  taken from there (``state_defaults``), and the run says so. This holds for any re-run: running
  ``actvt install`` again keeps the server's mode and mTLS setting.
- ``/etc/systemd/system/vector.service.d/override.conf``, which reset only ``ExecStart`` (so the
  unit's ``ExecStartPre``/``ExecReload`` still validated the package's demo config): replaced by our
  wiring, ``VECTOR_CONFIG`` in ``/etc/default/vector``. The file is backed up, removed, its folder
  removed when empty, and ``systemctl daemon-reload`` runs before Vector is restarted. An override
  that sets anything else is somebody's own: it is kept, with a note.
- The nginx site (``/etc/nginx/sites-available/actvt-vector`` + its sites-enabled link), the renewal
  hook (``/etc/letsencrypt/renewal-hooks/deploy/actvt-vector.sh``) and ``/etc/vector/vector.toml``
  are at the paths we write: they are replaced, and the engine backs them up.
- On an Apache host the bash installer configured no front (it printed instructions to follow by
  hand, and its proxy mode knew only nginx): what it left is Vector and its state. The run sets Apache
  up as the front (``concerns.apache``), and says that a ``/actvt`` proxy made by hand from those
  instructions is not the installer's and is to be removed (``notes``).
- The Let's Encrypt lineage is reused (``ACTVT_REUSE_CERT``); the CA and client certificates are
  adopted by ``mtls`` (same key, so clients keep connecting without a new bundle).
"""

import re
from typing import Dict, List, Mapping, Tuple

from installer.core import paths
from installer.core.actions import Absent, Command, Step
from installer.core.concern import Concern, Phase, Planner
from installer.core.facts import read_file

OVERRIDE_DIR = paths.VECTOR_DROPIN_DIR
OVERRIDE = f"{OVERRIDE_DIR}/override.conf"


_MODES = ("standalone", "proxy")


def state_defaults(files: Mapping[str, bytes], environ: Mapping[str, str]) -> Tuple[Dict[str, str], List[str]]:
    """The variables to add to ``environ`` from the recorded state, and one line for each.

    ``files``: server path -> content of ``install.state`` and ``domain`` (absent: not there)."""
    from installer.core.records import read_domain, read_state

    state = read_state(files.get(paths.STATE_FILE))
    domain = read_domain(files.get(paths.DOMAIN_FILE))
    added: Dict[str, str] = {}

    def unset(name: str) -> bool:
        return not (environ.get(name) or "").strip()

    if domain and unset("ACTVT_DOMAIN"):
        added["ACTVT_DOMAIN"] = domain
    if state.get("mode") in _MODES and unset("ACTVT_INSTALL_MODE") and unset("ACTVT_FORCE_STANDALONE"):
        added["ACTVT_INSTALL_MODE"] = state["mode"]
    if state.get("mtls") in ("enabled", "disabled") and unset("ACTVT_ENABLE_MTLS") and unset("ACTVT_MTLS_CA_FILE"):
        added["ACTVT_ENABLE_MTLS"] = "yes" if state["mtls"] == "enabled" else "no"
    enabled = (added.get("ACTVT_ENABLE_MTLS") or environ.get("ACTVT_ENABLE_MTLS") or "").strip().lower()
    if state.get("mtls_client_cn") and unset("ACTVT_MTLS_CLIENT_CN") and enabled in ("yes", "y", "true", "1"):
        added["ACTVT_MTLS_CLIENT_CN"] = state["mtls_client_cn"]
    # a server that trusts a CA kept elsewhere keeps trusting it: a plain re-run must not make a CA here
    if state.get("mtls_ca_file") and unset("ACTVT_MTLS_CA_FILE") and enabled not in ("no", "n", "false", "0"):
        added["ACTVT_MTLS_CA_FILE"] = state["mtls_ca_file"]
        if state.get("mtls_crl_file") and unset("ACTVT_MTLS_CRL_FILE"):
            added["ACTVT_MTLS_CRL_FILE"] = state["mtls_crl_file"]
    lines = [f"{name}={value} (not set; taken from {paths.DOMAIN_FILE if name == 'ACTVT_DOMAIN' else paths.STATE_FILE})"
             for name, value in added.items()]
    return added, lines


_OVERRIDE_LINE = re.compile(r"^(\[Service\]|ExecStart=|ExecStart=\S*vector\b.*)\Z")


def is_old_override(text: str) -> bool:
    """The bash installer's override: only ``[Service]`` and ``ExecStart`` lines naming vector."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("#", ";"))]
    return bool(lines) and any(line.startswith("ExecStart=") for line in lines) \
        and all(_OVERRIDE_LINE.match(line) for line in lines)


#: What the bash installer wrote at the paths we write. On the first run over its state (install.state
#: and no manifest) they are recorded in the manifest as adopted, not as foreign files: uninstall then
#: removes them rather than putting the bash installer's version back (its backup is kept).
BASH_FILES = (paths.VECTOR_CONFIG, paths.SERVER_CERT, paths.SERVER_KEY, paths.DEPLOY_HOOK, paths.NGINX_SITE,
              paths.NGINX_SITE_LINK, paths.NGINX_SNIPPET, paths.GENERATE_CLIENT, paths.STATE_FILE,
              paths.DOMAIN_FILE)


def bash_files(facts) -> tuple:
    """``BASH_FILES`` when this run adopts a bash-installed server, else ()."""
    return BASH_FILES if paths.STATE_FILE in facts.files and paths.MANIFEST not in facts.files else ()


def plan_migration(config, facts, decisions, ctx) -> List[Step]:
    """Remove the bash installer's ExecStart override (backed up), then daemon-reload."""
    text = facts.files.get(OVERRIDE)
    if text is None or not is_old_override(text.decode(errors="replace")):
        return []
    return [Step("Replacing the old Vector unit override", (
        Absent(OVERRIDE, f"the bash installer's ExecStart override; VECTOR_CONFIG in {paths.VECTOR_DEFAULTS} "
                         "points the whole unit (validate, start, reload) at vector.toml"),
        Absent(OVERRIDE_DIR, "left empty", if_empty=True),
        Command(("systemctl", "daemon-reload"), "systemd forgets the override", when_changed=(OVERRIDE,)),
    ))]


def notes(config, facts, decisions, ctx) -> List[str]:
    found = []
    text = facts.files.get(OVERRIDE)
    if text is not None and not is_old_override(text.decode(errors="replace")):
        found.append(f"{OVERRIDE} holds settings the installer did not write; it was kept: check that it does not "
                     f"override ExecStart or VECTOR_CONFIG")
    front = getattr(decisions, "front", None)
    if bash_files(facts) and decisions.mode == "proxy" and front is not None and front.name == "apache":
        found.append(f"this server was set up by the bash installer, which did not configure Apache (it printed "
                     f"instructions to follow by hand): Apache now proxies wss://{config.domain}/actvt with the "
                     f"installer's own files; remove a /actvt ProxyPass you added by hand from those instructions "
                     f"(it would not verify Vector's certificate), then `sudo apache2ctl configtest && "
                     f"sudo systemctl reload apache2`")
    return found


def with_state_defaults(root, environ: Mapping[str, str], out) -> Mapping[str, str]:
    """``environ`` plus the values ``state_defaults`` takes from the server under ``root`` (a
    ``paths.Root``); each value taken is shown with ``out.ok``."""
    files = {path: read_file(root, path) for path in (paths.STATE_FILE, paths.DOMAIN_FILE)}
    files = {path: data for path, data in files.items() if data is not None}
    added, lines = state_defaults(files, environ)
    for line in lines:
        out.ok(line)
    return dict(environ, **added) if added else environ


CONCERN = Concern(
    name="migration",
    reads=lambda config: (OVERRIDE,),
    planners=(Planner(Phase.MIGRATION, plan_migration),),
    notes=notes,
)
