"""Shared test helpers: configurations, fake facts, tree hashing, a recording runner."""

import hashlib
import os
import subprocess

from installer.core import config
from installer.core.facts import Facts, Listener, OSInfo

DOMAIN, EMAIL = "monitor.example.com", "admin@example.com"
DEBIAN = OSInfo(id="debian", version_id="12", pretty_name="Debian GNU/Linux 12 (bookworm)")


def make_config(**values):
    env = {"ACTVT_DOMAIN": DOMAIN, "ACTVT_EMAIL": EMAIL}
    env.update({f"ACTVT_{k.upper()}": v for k, v in values.items()})
    return config.parse(env)


def make_facts(web=None, gpu=False, files=None, **extra):
    listeners = (Listener(80, "0.0.0.0", web), Listener(443, "0.0.0.0", web)) if web else ()
    return Facts(os=DEBIAN, package_manager="apt", listeners=listeners, gpu=gpu, is_root=True,
                 systemd_running=True, files=files or {}, **extra)


def tree_digest(root):
    """Every path under root with its type, mode, owner and content hash."""
    listing = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            entry = [os.path.relpath(path, root), oct(st.st_mode), st.st_uid, st.st_gid]
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    entry.append(hashlib.sha256(handle.read()).hexdigest())
            elif os.path.islink(path):
                entry.append(os.readlink(path))
            listing.append(tuple(entry))
    return listing


class RecordingRunner:
    """Stands in for engine.Runner: records argv, answers from a table, fails on request."""

    def __init__(self, answers=None, fail_on=()):
        self.calls = []
        self.answers = answers or {}
        self.fail_on = fail_on

    def run(self, argv, env=None, check=True, display=None, timeout=None, secrets=()):
        from installer.core.errors import ApplyError

        self.calls.append(tuple(argv))
        key = " ".join(argv)
        if any(key.startswith(prefix) for prefix in self.fail_on):
            if check:
                raise ApplyError(f"{key} failed (exit 1): simulated")
            return subprocess.CompletedProcess(argv, 1, "", "simulated")
        return subprocess.CompletedProcess(argv, 0, self.answers.get(key, ""), "")
