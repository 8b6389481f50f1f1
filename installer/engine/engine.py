"""Check a plan against the host, then apply it.

``check`` compares every action with what is on disk (content, mode, owner) and with the system
(packages, services), and says for each whether it would change something and why. A dry run stops
there. ``apply`` carries out only the actions that change something, in order: files are written
atomically with their final mode and owner from the first byte, a replaced file's previous version
is copied to ``/var/lib/actvt/backups/<run>/`` first, and when an action fails, or a signal
(SIGINT, SIGTERM, SIGHUP) stops the run, the files this run wrote are put back as they were before
the error is raised. The command's own record (install's manifest) is the last part of the same
change; once it is written the run is committed, and a later stop puts nothing back. Every path
under the root is opened through ``fsafe.Tree`` (no planted link is followed, no FIFO is read);
temporary files an interrupted run left beside the plan's targets are removed before anything else
is written.
"""

import dataclasses
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import time
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

from installer.core import openpgp, packaging, paths, records
from installer.core.actions import (FILE_ACTIONS, Absent, Action, Command, Copy, Directory, File, Keyring, Packages,
                                    Plan, Service, Symlink, wanted_mode_group)
from installer.core.errors import ApplyError, Interrupted, Stopped
from installer.core.fs import NOBODY_ELSE, TMP_MARK, Owners, Tree, UnsafePath, kind_of, owner_names
from installer.core.paths import Root
from installer.engine.diff import MAX_DIFF_BYTES, file_diff
from installer.engine.journal import Journal
from installer.engine.pkglock import Waiter, first_holder
from installer.engine.runner import Runner, failure, held_signals, hold_stops, release_stops

__all__ = ["CHANGE", "OK", "SKIP", "Checked", "Engine", "Result", "Runner", "file_diff", "owner_names"]

CHANGE, OK, SKIP = "change", "ok", "skip"
HOST_ONLY = (Keyring, Packages, Command, Service)  # listed, not run, under --root (a keyring is downloaded)


@dataclasses.dataclass
class Checked:
    """An action and what applying it would do."""

    action: Action
    step: str
    status: str  # CHANGE, OK (already as wanted) or SKIP (cannot act here, e.g. under --root)
    why: str = ""  # what differs, or why it is skipped
    diff: str = ""
    changed: bool = False  # set by apply
    seconds: float = 0.0
    step_no: int = 0  # index of its step in the plan
    verbs: Tuple[str, ...] = ()  # a Service: the systemctl verbs apply runs, in order


@dataclasses.dataclass
class Result:
    items: List[Checked]
    backup_dir: Optional[str] = None
    created: Tuple[str, ...] = ()  # paths this run made where there was nothing
    backed_up: Mapping[str, str] = dataclasses.field(default_factory=dict)  # replaced path -> its backup
    removed_leftovers: Tuple[str, ...] = ()  # temporary files of an interrupted run, removed first

    @property
    def changed(self) -> List[Checked]:
        return [item for item in self.items if item.changed]


# --- ownership ------------------------------------------------------------------------------------


def _ids(owner: str, group: str) -> Tuple[int, int]:
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise ApplyError(f"user {owner!r} does not exist") from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ApplyError(f"group {group!r} does not exist") from None
    return uid, gid


# --- the engine -----------------------------------------------------------------------------------


def leftover_names(base: str) -> "re.Pattern":
    """Temporary names an interrupted run leaves beside ``base``: this version's
    ``.<base>.actvt-tmp-<hex>``, and the older ``.<base>.XXXXXXXX`` (mkstemp), ``<base>.actvt-tmp``,
    ``<base>.actvt-restore`` and ``<base>.actvt-new`` (the iptables save)."""
    name = re.escape(base)
    return re.compile(rf"^(?:\.{name}{re.escape(TMP_MARK)}[0-9a-f]{{8}}|\.{name}\.[a-z0-9_]{{8}}"
                      rf"|{name}\.actvt-(?:tmp|restore|new))\Z")


class _Handler(NamedTuple):
    check: Callable  # (engine, action, step title, paths changing so far) -> Checked
    apply: Callable  # (engine, checked item, journal) -> None


class Engine:
    def __init__(self, root: Root, runner: Runner, manage_owner: Optional[bool] = None,
                 log: Callable[[str, str], None] = lambda level, text: None,
                 lock_timeout: float = packaging.DEFAULT_TIMEOUT, notify: Optional[Callable[[str], None]] = None,
                 installer_files: frozenset = frozenset()):
        self.root = root
        # paths the manifest records as made by the installer (engine/diff.py: their old lines are shown)
        self.installer_files = installer_files
        self.tree = Tree(root)
        self.runner = runner
        self.log = log
        self.lock_timeout = lock_timeout
        # the one line that says who holds a package manager's lock (the console's warning in a run)
        self.locks = Waiter(lock_timeout, notify or (lambda text: log("WARN", text)), log, host=root.host)
        # Owners can only be set (and so are only compared) when running as root.
        self.manage_owner = os.geteuid() == 0 if manage_owner is None else manage_owner
        self.warnings: List[str] = []  # failures of commands marked may_fail
        self.leftovers: List[str] = []  # temporary files of an interrupted run (found by check)
        self._removing: set = set()

    # -- check --

    def check(self, plan: Plan) -> List[Checked]:
        items: List[Checked] = []
        changing: set = set()
        self._removing = set()  # paths this run removes (an emptied folder may go too), not those it writes
        # before any other look: nothing another user owns or can write is taken over
        self.tree.check_folders(self._folders(plan), records.allowed_owners)
        for number, step in enumerate(plan.steps):
            for action in step.actions:
                item = self._check_one(action, step.title, changing)
                item.step_no = number
                if item.status == CHANGE and isinstance(action, FILE_ACTIONS):
                    changing.add(action.path)
                    if isinstance(action, Absent):
                        self._removing.add(action.path)
                    else:
                        self._removing.discard(action.path)
                if item.status == CHANGE and isinstance(action, Command):
                    changing.update(action.creates)
                items.append(item)
        self.leftovers = self._leftovers(plan)
        return items

    def _folders(self, plan: Plan) -> Dict[str, Owners]:
        """The folders the plan writes into, with the owners it gives them itself: the parents of its
        files, its own folders, and the backups folder the journal copies into."""
        folders: Dict[str, Owners] = {}
        for action in plan.actions:
            if isinstance(action, Command):  # the journal copies what it saves out of these folders, and back
                for path in action.saves:
                    folders.setdefault(os.path.dirname(path), NOBODY_ELSE)
            if not isinstance(action, FILE_ACTIONS):
                continue
            folders.setdefault(os.path.dirname(action.path.rstrip("/")) or "/", NOBODY_ELSE)
            if isinstance(action, Directory):
                try:
                    uid, gid = _ids(action.owner, action.group)
                except ApplyError:  # a user made later in the run: it owns nothing yet
                    continue
                folders[action.path] = ((uid,), (gid,) if action.mode & 0o020 else ())
        if folders:
            folders.setdefault(paths.BACKUP_DIR, NOBODY_ELSE)
        return folders

    def _leftovers(self, plan: Plan) -> List[str]:
        targets = [action.path for action in plan.actions if isinstance(action, (File, Copy, Keyring, Symlink))]
        targets += [path for action in plan.actions if isinstance(action, Command) for path in action.creates]
        found = []
        for folder in dict.fromkeys(os.path.dirname(path) for path in targets):
            names = [os.path.basename(path) for path in targets if os.path.dirname(path) == folder]
            patterns = [leftover_names(name) for name in names]
            try:
                listing = self.tree.listdir(folder)
            except UnsafePath:
                continue  # the action itself reports it
            found += [f"{folder.rstrip('/')}/{entry}" for entry in listing
                      if any(pattern.match(entry) for pattern in patterns)]
        return found

    def _check_one(self, action: Action, step: str, changing: set) -> Checked:
        handler = self.HANDLERS.get(type(action))
        if handler is None:
            raise TypeError(f"unknown action {action!r}")
        if type(action) in HOST_ONLY and not self.root.is_host:
            return Checked(action, step, SKIP, f"not run under --root {self.root.root}")
        return handler.check(self, action, step, changing)

    def _check_symlink(self, action: Symlink, step: str, changing: set) -> Checked:
        st = self.tree.lstat(action.path)
        current = self.tree.readlink(action.path) if st is not None and stat.S_ISLNK(st.st_mode) else None
        if current == action.target:
            return Checked(action, step, OK)
        if st is not None and current is None:
            return Checked(action, step, CHANGE, f"a {_kind_word(st)} is there")
        return Checked(action, step, CHANGE, "link missing" if current is None else f"points to {current}")

    def _check_absent(self, action: Absent, step: str, changing: set) -> Checked:
        st = self.tree.lstat(action.path)
        if st is None:
            if action.path in changing:  # made earlier in this run (e.g. a marker), removed after
                return Checked(action, step, CHANGE, "made in this run")
            return Checked(action, step, OK)
        if action.if_empty and stat.S_ISDIR(st.st_mode):
            inside = {f"{action.path.rstrip('/')}/{name}" for name in self.tree.listdir(action.path)}
            inside |= {path for path in changing if os.path.dirname(path) == action.path.rstrip("/")}  # written here
            left = sorted(inside - self._removing)
            if left:
                return Checked(action, step, OK, f"kept: {len(left)} other file(s) in it")
        return Checked(action, step, CHANGE, "exists")

    def _check_keyring(self, action: Keyring, step: str, changing: set) -> Checked:
        """A keyring there is kept when it holds only pinned keys (nothing is downloaded to check it)."""
        st = self._target_stat(action.path)
        if st is None:
            return Checked(action, step, CHANGE, "missing")
        if not stat.S_ISREG(st.st_mode):
            return Checked(action, step, CHANGE, f"a {_kind_word(st)} is there")
        try:
            held = [cert.fingerprint for cert in openpgp.certificates(self.tree.read(action.path, follow=False))]
        except openpgp.NotAKey as exc:
            return Checked(action, step, CHANGE, f"not a keyring: {exc}")
        foreign = [fpr for fpr in held if fpr not in action.fingerprints]
        if foreign:
            return Checked(action, step, CHANGE, "holds a key that is not pinned: " + ", ".join(foreign))
        why = self._meta_differences(st, action.mode, "root", "root")
        return Checked(action, step, CHANGE if why else OK, ", ".join(why))

    def _check_packages(self, action: Packages, step: str, changing: set) -> Checked:
        missing = [name for name in action.names if not self._package_present(name)]
        if not missing:
            return Checked(action, step, OK)
        return Checked(action, step, CHANGE, "missing: " + " ".join(missing))

    def _check_command(self, action: Command, step: str, changing: set) -> Checked:
        if not action.when_changed:
            return Checked(action, step, CHANGE, action.reason)
        hit = [path for path in action.when_changed if path in changing]
        if hit:
            return Checked(action, step, CHANGE, "changed: " + ", ".join(hit))
        return Checked(action, step, OK, "nothing it depends on changed")

    def _copy_source(self, action: Copy) -> str:
        return action.source if action.host_source else self.root.host(action.source)

    def _open_source(self, action: Copy):
        """The copy's source for reading (None when missing): a file of this machine, or a path under
        the root read through the tree (certbot's live/ links are root's, and followed)."""
        if action.host_source:
            try:
                return open(action.source, "rb")
            except FileNotFoundError:
                return None
        return self.tree.open_read(action.source)

    def _check_copy(self, action: Copy, step: str, changing: set) -> Checked:
        if action.source in changing and not action.host_source:
            return Checked(action, step, CHANGE, f"{action.source} is made in this run")
        source = self._open_source(action)
        if source is None:
            if not self.root.is_host:  # made on the server by a command that is not run under --root
                return Checked(action, step, SKIP, f"{action.source} is made on the server")
            return Checked(action, step, CHANGE, f"{action.source} does not exist yet")
        with source:
            size = os.fstat(source.fileno()).st_size
            if size <= MAX_DIFF_BYTES:  # small: compared and diffed like a File
                return self._check_file(File(action.path, source.read(), action.mode, action.owner, action.group,
                                             action.sensitive, action.reason), step, changing, shown=action)
            # large (the kept zipapp): compared in blocks, never held in memory whole
            summary = f"({size} bytes, copied from {action.source})"
            st = self._target_stat(action.path)
            if st is None:
                return Checked(action, step, CHANGE, "new file", summary)
            if not stat.S_ISREG(st.st_mode):
                return Checked(action, step, CHANGE, f"a {_kind_word(st)} is there")
            with self.tree.open_read(action.path, follow=False) as current:
                same = st.st_size == size and _same_blocks(source, current)
        why = [] if same else ["content"]
        why += self._meta_differences(st, action.mode, action.owner, action.group)
        return Checked(action, step, CHANGE if why else OK, ", ".join(why), summary if "content" in why else "")

    def _meta_differences(self, st: os.stat_result, mode: Optional[int], owner: str, group: str) -> List[str]:
        why = []
        if mode is not None and stat.S_IMODE(st.st_mode) != mode:
            why.append(f"mode {stat.S_IMODE(st.st_mode):04o} -> {mode:04o}")
        if self.manage_owner and owner_names(st) != (owner, group):
            why.append("owner {}:{} -> {}:{}".format(*owner_names(st), owner, group))
        return why

    def _target_stat(self, path: str) -> Optional[os.stat_result]:
        """What is at a path the plan writes a file to: None, or its lstat. A FIFO, socket or device
        there is refused at once (someone put it there; the installer neither reads nor replaces it)."""
        st = self.tree.lstat(path)
        if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise UnsafePath(f"{path} is a {_kind_word(st)} where the installer writes a file; it was neither "
                             "read nor replaced. Remove it and run again")
        return st

    def _check_file(self, action: File, step: str, changing: set = frozenset(),
                    shown: Optional[Action] = None) -> Checked:
        shown = shown or action
        st = self._target_stat(action.path)
        if st is None:
            return Checked(shown, step, CHANGE, "new file", file_diff(action.path, None, action.content,
                                                                       action.sensitive, action.own_lines))
        if not stat.S_ISREG(st.st_mode):  # a link is replaced, never followed; a folder is moved into backups
            return Checked(shown, step, CHANGE, f"a {_kind_word(st)} is there")
        before = self.tree.read(action.path, follow=False)
        why = []
        diff = ""
        if before != action.content:
            why.append("content")
            diff = file_diff(action.path, before, action.content, action.sensitive, action.own_lines,
                             before_is_own=action.path in self.installer_files)
        mode, group = wanted_mode_group(action, stat.S_IMODE(st.st_mode), owner_names(st)[1])
        why += self._meta_differences(st, mode, action.owner, group)
        return Checked(shown, step, CHANGE if why else OK, ", ".join(why), diff)

    def _check_dir(self, action: Directory, step: str, changing: set) -> Checked:
        try:
            fd = self.tree.open_dir(action.path)
        except FileNotFoundError:
            return Checked(action, step, CHANGE, "new directory")
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        why = self._meta_differences(st, action.mode, action.owner, action.group)
        return Checked(action, step, CHANGE if why else OK, ", ".join(why))

    def _package_present(self, spec: str) -> bool:
        name, _, version = spec.partition("=")
        result = self.runner.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", name], check=False) \
            if shutil.which("dpkg-query") else \
            self.runner.run(["rpm", "-q", "--queryformat", "installed\t%{VERSION}-%{RELEASE}", name], check=False)
        if result.returncode != 0 or "installed" not in result.stdout:
            return False
        return not version or result.stdout.split("\t")[-1].strip() == version

    def _check_service(self, action: Service, step: str, changing: set) -> Checked:
        active = self.runner.run(["systemctl", "is-active", action.name], check=False).stdout.strip()
        enabled = self.runner.run(["systemctl", "is-enabled", action.name], check=False).stdout.strip()
        verbs: List[str] = []
        why: List[str] = []
        if action.enabled and enabled != "enabled":
            verbs.append("enable")
            why.append("enable")
        if not action.enabled and enabled == "enabled":
            verbs.append("disable")
            why.append("disable")
        if action.running:
            hit = [path for path in action.restart_when_changed if path in changing]
            if active != "active":
                verbs.append("start")
                why.append("start")
            elif hit:
                verbs.append("restart")
                why.append("restart: changed " + ", ".join(hit))
        elif active == "active":
            verbs.append("stop")
            why.append("stop")
        return Checked(action, step, CHANGE if verbs else OK, "; ".join(why), verbs=tuple(verbs))


    # -- apply --

    def apply(self, items: List[Checked], before: Callable[[Checked], None] = lambda item: None,
              after: Callable[[Checked], None] = lambda item: None,
              finish: Optional[Callable[[Journal], None]] = None) -> Result:
        """Apply every CHANGE item in order; ``before``/``after`` are called around each item.
        ``finish(journal)`` is the last part of the same change (install records its manifest there,
        through the journal): a failure or a stop signal before it has returned puts every file back.
        Its end is the point of no return: stop signals wait while it runs, the change is then
        committed (``journal.last_commit``) and a stop that came meanwhile arrives after it, when it
        only cuts the report short (commands/cli.py says so)."""
        journal = Journal(self.tree)
        removed: List[str] = []
        waiting = None  # the signal mask before stops were held for the commit
        try:
            for path in self.leftovers:  # an interrupted run's temporary files: nobody's data
                self.tree.remove(path)
                removed.append(path)
                self.log("INFO", f"removed {path}, left by an interrupted run")
            for item in items:
                before(item)
                if item.status == CHANGE:
                    started = time.monotonic()
                    self.HANDLERS[type(item.action)].apply(self, item, journal)
                    item.changed = True
                    item.seconds = time.monotonic() - started
                after(item)
            waiting = hold_stops()
            if finish is not None:
                finish(journal)
            result = Result(items, journal.backup_dir, tuple(journal.created), dict(journal.saved), tuple(removed))
            journal.commit(len(result.changed))
        except BaseException as exc:
            with held_signals():  # a second SIGTERM must not stop the rollback itself
                restored = journal.roll_back()
                for argv in reversed(journal.undo):  # e.g. reload nginx with the files put back
                    try:
                        self.runner.run(list(argv), check=False)
                    except ApplyError:
                        pass
            done = [item.action.describe() for item in items if item.changed and
                    not isinstance(item.action, FILE_ACTIONS)]
            if isinstance(exc, KeyboardInterrupt):
                signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
                message = f"stopped by {signal.Signals(signum).name}"
            else:
                message = str(exc) if isinstance(exc, ApplyError) else f"{type(exc).__name__}: {exc}"
            lines = [message]
            if restored:
                lines.append(f"put back {restored} file(s) this run had written")
            if done:
                lines.append("already done before the failure: " + "; ".join(done))
            lines.append("nothing else was changed; running the installer again is safe")
            if isinstance(exc, KeyboardInterrupt):
                raise Interrupted("\n".join(lines), signum) from exc
            raise ApplyError("\n".join(lines)) from exc
        finally:
            if waiting is not None:
                release_stops(waiting)  # a stop that came during the commit arrives here, after it
        return result

    def _ids_for(self, owner: str, group: str) -> Optional[Tuple[int, int]]:
        return _ids(owner, group) if self.manage_owner else None

    def _apply_file(self, item: Checked, journal: "Journal") -> None:
        action = item.action
        self._ensure_parent(action.path, journal)
        journal.save(action.path)
        st = self.tree.lstat(action.path)  # as it is now (a package may have made it since the check)
        ids = self._ids_for(action.owner, action.group)
        if st is None or not stat.S_ISREG(st.st_mode):
            mode = 0o644 if action.mode is None else action.mode
        elif action.mode is None:  # keep the file's own mode
            mode = stat.S_IMODE(st.st_mode)
        else:
            mode, group = wanted_mode_group(action, stat.S_IMODE(st.st_mode), owner_names(st)[1])
            if ids is not None and group != action.group:  # the group it has, kept with its stricter mode
                ids = (ids[0], st.st_gid)
        self.tree.write(action.path, action.content, mode, ids)

    def _apply_copy(self, item: Checked, journal: "Journal") -> None:
        action = item.action
        source = self._open_source(action)
        if source is None:
            raise ApplyError(f"cannot copy {action.source} to {action.path}: it does not exist")
        with source:
            self._ensure_parent(action.path, journal)
            journal.save(action.path)
            self.tree.write(action.path, None, action.mode, self._ids_for(action.owner, action.group), source=source)

    def _apply_keyring(self, item: Checked, journal: "Journal") -> None:
        """Every key is downloaded and its fingerprint compared before a byte is written."""
        action = item.action
        kept: dict = {}
        for url in action.urls:
            try:
                found = openpgp.certificates(fetch(url))
            except openpgp.NotAKey as exc:
                raise ApplyError(f"{url} is not an OpenPGP public key ({exc}); {action.path} was not written") from None
            for cert in found:
                if cert.fingerprint not in action.fingerprints:
                    raise ApplyError(
                        f"refused the key from {url}: its fingerprint {cert.fingerprint} is not one of the pinned "
                        f"{', '.join(action.fingerprints)}; {action.path} was not written"
                        + (f". {action.hint}" if action.hint else ""))
                kept.setdefault(cert.fingerprint, cert.data)  # the same key from two files: once
        if action.armored:
            data = b"".join(openpgp.armor(blob) for blob in kept.values())
        else:
            data = b"".join(kept.values())
        self.log("INFO", f"keyring {action.path}: " + ", ".join(kept))
        self._ensure_parent(action.path, journal)
        journal.save(action.path)
        self.tree.write(action.path, data, action.mode, (0, 0) if self.manage_owner else None)

    def _apply_dir(self, item: Checked, journal: "Journal") -> None:
        action = item.action
        self._ensure_parent(action.path, journal)
        self.tree.make_dir(action.path, action.mode, self._ids_for(action.owner, action.group),
                           created=journal.created)

    def _apply_symlink(self, item: Checked, journal: "Journal") -> None:
        action = item.action
        self._ensure_parent(action.path, journal)
        journal.save(action.path)
        self.tree.symlink(action.path, action.target)

    def _apply_absent(self, item: Checked, journal: "Journal") -> None:
        action = item.action
        if self.tree.lstat(action.path) is None:
            return
        journal.save(action.path)
        self.tree.remove(action.path)

    def _apply_command(self, item: Checked, journal: "Journal") -> None:
        action = item.action
        for path in action.saves:
            journal.save(path)
        if action.locks:
            result = self._run_package_command(action.argv, action.locks, env=dict(action.env),
                                               display=action.display, what=action.describe(),
                                               timeout=action.timeout, check=not action.may_fail,
                                               secrets=action.secrets)
        else:
            result = self.runner.run(action.argv, env=dict(action.env), display=action.display,
                                     timeout=action.timeout, check=not action.may_fail, secrets=action.secrets)
        journal.undo.extend(action.on_rollback)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
            item.why = f"failed (exit {result.returncode}), going on: " + " | ".join(tail)
            self.warnings.append(f"{action.describe()}: {item.why}")

    def _apply_packages(self, item: Checked, journal: "Journal") -> None:
        action = item.action
        if action.manager == "apt":
            # keep configuration files we edited (e.g. /etc/default/vector) without asking
            argv = ["apt-get", *packaging.apt_lock_option(self.lock_timeout), "install", "-y", "-q",
                    "--no-install-recommends", "-o", "Dpkg::Options::=--force-confdef",
                    "-o", "Dpkg::Options::=--force-confold", *action.names]
        else:
            argv = [action.manager, "install", "-y", *(name.replace("=", "-", 1) for name in action.names)]
        self._run_package_command(argv, packaging.for_install(action.manager), what=action.describe(),
                                  timeout=1800)

    def _run_package_command(self, argv, locks, check: bool = True, display: Optional[str] = None,
                             what: Optional[str] = None, **run):
        """Run a package manager's command once no other process holds its locks (one bound for the
        command, ``lock_timeout``); when it fails while another process has taken one of them again
        meanwhile, wait and run it again (apt and dpkg fail at once on a held lock; after the bound,
        the wait fails naming the holder)."""
        shown = display or " ".join(argv)
        deadline = self.locks.deadline()
        while True:
            self.locks.wait(locks, deadline, what or "run " + shown)
            result = self.runner.run(argv, check=False, display=display, **run)
            if result.returncode == 0 or first_holder(locks, self.root.host) is None:
                break  # done, or failed for a reason of its own
            self.log("INFO", f"{shown} failed while another process held a package lock: waiting to run it again")
        if check and result.returncode != 0:
            raise failure(shown, result)
        return result

    def _apply_service(self, item: Checked, journal: "Journal") -> None:
        action = item.action
        for verb in item.verbs:
            self.runner.run(["systemctl", verb, action.name])
        if {"start", "restart"} & set(item.verbs):
            self._wait_active(action)  # a stopped unit is what was asked: nothing to wait for

    #: The one handler of each action type: how it is checked against the host, and how applied.
    HANDLERS = {
        File: _Handler(lambda self, a, s, c: self._check_file(a, s, c), _apply_file),
        Copy: _Handler(_check_copy, _apply_copy),
        Keyring: _Handler(_check_keyring, _apply_keyring),
        Directory: _Handler(_check_dir, _apply_dir),
        Symlink: _Handler(_check_symlink, _apply_symlink),
        Absent: _Handler(_check_absent, _apply_absent),
        Command: _Handler(_check_command, _apply_command),
        Packages: _Handler(_check_packages, _apply_packages),
        Service: _Handler(_check_service, _apply_service),
    }

    def _ensure_parent(self, path: str, journal: "Journal") -> None:
        """Missing folders on the way to ``path`` are made 0755 (whatever the umask) and recorded."""
        fd, _ = self.tree.parent(path, create=0o755, created=journal.created, writable=True)
        os.close(fd)

    def _wait_active(self, action: Service) -> None:
        """Wait for the unit to be active; if it is not, say why (journal, diagnosis commands)."""
        from installer.core.facts import gather_listeners

        deadline = time.monotonic() + action.wait_seconds
        state, missing = "", list(action.ports)
        while True:
            state = self.runner.run(["systemctl", "is-active", action.name], check=False).stdout.strip()
            if state == "active":
                listening = {listener.port for listener in gather_listeners(self.root)}
                missing = [port for port in action.ports if port not in listening]
            if (state == "active" and not missing) or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if state == "active" and not missing:
            return
        if state == "active":
            lines = [f"{action.name} is active but nothing listens on port(s) "
                     f"{', '.join(map(str, missing))} after {action.wait_seconds:.0f} s"]
        else:
            lines = [f"{action.name} is {state or 'not active'} after {action.wait_seconds:.0f} s"]
        for argv in (("journalctl", "-u", action.name, "-n", "20", "--no-pager"),) + tuple(action.diagnose):
            result = self.runner.run(list(argv), check=False)
            output = (result.stdout + result.stderr).strip().splitlines()[-20:]
            lines.append(f"$ {' '.join(argv)}")
            lines.extend(f"  {line}" for line in output)
        raise ApplyError("\n".join(lines))


def _kind_word(st: os.stat_result) -> str:
    return kind_of(st.st_mode)


def _same_blocks(first, second, size: int = 1 << 16) -> bool:
    while True:
        a, b = first.read(size), second.read(size)
        if a != b:
            return False
        if not a:
            return True


def fetch(url: str, timeout: float = 30) -> bytes:
    """GET ``url`` (proxy variables and the system's CA store, as apt and certbot); a clear error
    when it cannot."""
    from installer.core.http import FetchError, get

    try:
        return get(url, os.environ, timeout)
    except FetchError as exc:
        raise ApplyError(f"could not download {url}: {exc}") from None


