#!/usr/bin/env python3
try:
    # actvt-installer launcher.
    #
    # This text file is what `curl -fsSL https://…/install.pyz | python3 -I -` runs (or `python3 -`). CPython cannot
    # read a binary zipapp from a pipe, so, like get-pip.py, it carries the shiv-built zipapp (xz-compressed, as base64
    # text) at its end, writes it once to a root-owned cache and runs it. The same file, without the payload and
    # pointed at the copy kept on the server, is the `actvt` command.
    #
    # It uses the standard library only and parses on any Python 3 (down to 3.6: tests/test_launcher.py), so that an
    # unsupported interpreter gets a clear message instead of a traceback.
    #
    # The whole file is one `try` statement whose `finally` clause, the file's last bytes (no newline after them),
    # starts the launcher: a download cut at any byte after the first line does not parse (or, cut inside a
    # keyword, stops on a NameError), so nothing of it runs and Python exits with 1.
    import sys  # built into the interpreter: never looked up on sys.path

    def safe_path(path, path0, cwd, pythonpath, user_site):
        """sys.path without what another user may control: path0 (the script's folder, or "" = the current folder,
        which CPython puts first unless -I/-P), relative entries, the current folder, PYTHONPATH's entries and the
        user site (and folders under it). What is left is what `python3 -I` has: the standard library and the
        system's site folders. Pure: strings in, strings out (``os`` is not imported yet)."""
        dropped = set(p.rstrip("/") for p in pythonpath if p) | {cwd.rstrip("/")}
        keep = []
        for index, entry in enumerate(path):
            if index == 0 and path0:
                continue
            plain = entry.rstrip("/")
            if not entry.startswith("/") or plain in dropped:
                continue
            if user_site and (plain + "/").startswith(user_site.rstrip("/") + "/"):
                continue
            keep.append(entry)
        return keep

    def secure_import_path():
        """Before the first import that searches sys.path (`sys` and `posix` are built in)."""
        import posix

        flags = sys.flags
        site = sys.modules.get("site")
        try:
            cwd = posix.getcwd()
        except OSError:  # a deleted current folder
            cwd = ""
        pythonpath = "" if flags.ignore_environment else posix.environ.get(b"PYTHONPATH", b"").decode(
            sys.getfilesystemencoding(), "surrogateescape")
        user_site = getattr(site, "USER_SITE", None) if getattr(site, "ENABLE_USER_SITE", False) else None
        path0 = not (flags.isolated or getattr(flags, "safe_path", False))
        sys.path[:] = safe_path(sys.path, path0, cwd, pythonpath.split(":"), user_site)

    if __name__ == "__main__":
        secure_import_path()

    import os

    VERSION = "@VERSION@"
    BUILD_ID = "@BUILD_ID@"  # shiv build id of the zipapp: names its extraction folder
    PAYLOAD_SHA256 = "@PAYLOAD_SHA256@"
    KEPT_PYZ = "@KEPT_PYZ@"  # the `actvt` command: path of the zipapp kept on the server
    PYZ_NAME = "actvt.pyz"
    SYSTEM_CACHE = "/var/cache/actvt"
    # OLDEST is the patch release the bundled cryptography's Requires-Python starts at (it excludes 3.9.0
    # and 3.9.1); build.py stops a build whose wheels say otherwise. NEWEST: the newest minor, any patch.
    OLDEST, NEWEST = (3, 9, 2), (3, 14)
    ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
    MIN_GLIBC = (2, 28)
    ROOT_UNSET = ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONBREAKPOINT",
                  "PYTHONPLATLIBDIR")

    def fail(message):
        sys.stderr.write("actvt-installer: " + message + "\n")
        sys.exit(1)

    def check_platform(machine=None, version=None, libc=None, system=None, implementation=None):
        """Stop with a clear message unless this is Linux x86_64/aarch64, glibc >= 2.28, CPython 3.9.2-3.14."""
        system = system or sys.platform
        implementation = implementation or sys.implementation.name
        version = version or tuple(sys.version_info[:3])
        machine = machine or os.uname().machine
        if libc is None:
            try:
                libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
            except (AttributeError, ValueError, OSError):
                libc = ""
        if not system.startswith("linux"):
            fail("runs on Linux servers only (this is %s)" % system)
        if implementation != "cpython":
            fail("needs CPython (this is %s)" % implementation)
        if machine not in ARCHES:
            fail("supports x86_64 and aarch64 (this machine is %s)" % machine)
        parts = libc.split()
        try:
            glibc = tuple(int(n) for n in parts[1].split(".")[:2]) if parts[0] == "glibc" else None
        except (IndexError, ValueError):
            glibc = None
        if glibc is None or glibc < MIN_GLIBC:
            fail("needs glibc %d.%d or newer (found: %s)" % (MIN_GLIBC + (libc or "no glibc",)))
        # last: another interpreter on the host mends only this one (main looks for it)
        if not supported(version):
            fail(version_message(version))
        return ARCHES[machine]

    def supported(version):
        """(major, minor, micro): from OLDEST's patch release to any patch release of NEWEST's minor."""
        return OLDEST <= tuple(version)[:3] and tuple(version)[:2] <= NEWEST

    def dotted(version):
        return ".".join(str(part) for part in version)

    def version_message(version):
        return "needs Python %s to %s (this is %s)" % (dotted(OLDEST), dotted(NEWEST), dotted(version))

    #: what a candidate interpreter says of itself (run with -I: nothing of the environment or the current folder)
    PROBE = "import sys; print(sys.implementation.name, *sys.version_info[:3])"

    def trusted_file(path, uid=None):
        """The real path of an executable file that it and every folder above it are owned by root (or us) and
        writable by nobody else, else None: a python3.X in a folder another user can write would run their code
        as root. The real path is what gets run, so a link cannot be turned elsewhere after this check."""
        uid = os.geteuid() if uid is None else uid
        real = os.path.realpath(path)
        try:
            if not (os.path.isfile(real) and os.access(real, os.X_OK)):
                return None
            return owned_chain(real, uid, lambda at: False)
        except OSError:
            return None

    def owned_chain(real, uid, sticky_ok):
        """``real`` when it and every folder above it are owned by root (or ``uid``) and writable by nobody
        else, except a folder with the sticky bit where ``sticky_ok(folder)`` allows it (others can add
        entries there but not rename or remove ours); else None. OSError passes to the caller."""
        at = real
        while True:
            st = os.stat(at)
            shared = st.st_mode & 0o022 and not (st.st_mode & 0o1000 and sticky_ok(at))
            if st.st_uid not in (0, uid) or shared:
                return None
            if at == "/":
                return real
            at = os.path.dirname(at)

    def probe_version(path):
        """(implementation, (major, minor, micro)) as the interpreter at path reports them, or None."""
        import subprocess

        try:
            out = subprocess.check_output([path, "-I", "-c", PROBE], stdin=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, timeout=30, universal_newlines=True)
            name, major, minor, micro = out.split()
            return name, (int(major), int(minor), int(micro))
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    def python_folders(environ):
        """PATH's absolute folders, then where distributions put the interpreters they ship beside python3
        (/usr/bin: EL8's python3.11, Ubuntu 20.04's python3.9; /usr/local/bin: one built from source).
        /usr/libexec/platform-python is EL8's 3.6 itself: not worth a look."""
        folders = []
        for folder in environ.get("PATH", "").split(":") + ["/usr/local/bin", "/usr/bin", "/bin"]:
            if folder.startswith("/") and folder.rstrip("/") not in folders:
                folders.append(folder.rstrip("/") or "/")
        return folders

    def find_python(environ, probe=None, trusted=None):
        """The newest trusted CPython 3.9.2-3.14 on the host, named python3.X: (real path, version) or None."""
        probe = probe or probe_version
        trusted = trusted or trusted_file
        for minor in range(NEWEST[1], OLDEST[1] - 1, -1):
            for folder in python_folders(environ):
                path = trusted(os.path.join(folder, "python3.%d" % minor))
                if path is None:
                    continue
                found = probe(path)
                if found and found[0] == "cpython" and supported(found[1]):
                    return path, found[1]
        return None

    def os_release(path="/etc/os-release"):
        fields = {}
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        fields[key] = value.strip().strip("\"'")
        except OSError:
            pass
        return fields

    def install_advice(release):
        """The command that installs a supported Python beside the system's python3 here, or None (then the
        message says what is needed without a command)."""
        ids = [release.get("ID", "")] + release.get("ID_LIKE", "").split()
        major = release.get("VERSION_ID", "").split(".")[0]
        if ids[0] == "debian" and major.isdigit() and int(major) < 11:
            return None  # Debian 10's newest is 3.7, and no backport: Debian 11 has 3.9
        if "ubuntu" in ids or "debian" in ids:
            return "apt-get install -y python3.9"  # Ubuntu 20.04: in universe
        if set(ids) & {"rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn"}:
            return "dnf install -y python3.11"  # EL8's AppStream has 3.9, 3.11 and 3.12
        if set(ids) & {"suse", "sles", "opensuse"}:
            return "zypper install -y python311"
        return None

    def other_python(version, environ, release=None):
        """The interpreter to run the zipapp with when this one is not supported (says so in one line), or
        stop with one line naming the command that installs one."""
        found = find_python(environ)
        if found:
            sys.stderr.write("actvt-installer: this Python is %s; running with %s (%s)\n"
                             % (dotted(version), found[0], dotted(found[1])))
            return found[0]
        # a 3.9.0 or 3.9.1 gets no command: the one that installs python3.9 may well install that one again
        old_minor = tuple(version)[:2] < OLDEST[:2]
        advice = install_advice(os_release() if release is None else release) if old_minor else None
        wanted = "python3.%d to python3.%d" % (OLDEST[1], NEWEST[1])
        if advice:
            fail("%s and found none of %s on this system; install one with `%s`, then run the same command "
                 "again" % (version_message(version), wanted, advice))
        fail("%s and found none of %s on this system; install one of them, then run the same command again"
             % (version_message(version), wanted))

    def _usable(path, create=True):
        """A real folder (not a link) we own, that nobody else can write, that we can write to and
        execute from (a noexec /tmp cannot load extensions)."""
        import stat

        try:
            if create and not os.path.lexists(path):
                os.makedirs(path, 0o700)
                os.chmod(path, 0o700)
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return False
            if not os.access(path, os.W_OK | os.X_OK):
                return False
            return not (os.statvfs(path).f_flag & getattr(os, "ST_NOEXEC", 8))
        except OSError:
            return False

    def cache_candidates(environ):
        """Root: /var/cache/actvt. Others: the XDG cache, then per-user folders that allow exec."""
        uid = os.geteuid()
        if uid == 0:
            return [SYSTEM_CACHE]
        home = environ.get("HOME") or os.path.expanduser("~")
        return [
            os.path.join(environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "actvt"),
            "/var/tmp/actvt-%d" % uid,
            "/tmp/actvt-%d" % uid,
            "/dev/shm/actvt-%d" % uid,
        ]

    def cache_root(environ=None):
        """The first of cache_candidates that is usable (made when missing)."""
        environ = os.environ if environ is None else environ
        uid = os.geteuid()
        candidates = cache_candidates(environ)
        for path in candidates:
            if _usable(path):
                if uid == 0:
                    os.chmod(path, 0o755)  # readable by all: the `actvt` command of other users runs from it
                return path
        fail("found no writable folder that allows running code for its cache (tried %s)" % ", ".join(candidates))

    def site_packages(shiv_root):
        return os.path.join(shiv_root, PYZ_NAME + "_" + BUILD_ID, "site-packages")

    def run(pyz, shiv_root, python=None):
        """Run the zipapp: in this process when shiv's extraction of it is intact, else through shiv (which
        extracts it again when it is damaged); with python, another interpreter, always through shiv. A dry
        run (sys.dont_write_bytecode, set by main) passes -B on: no byte code beside what it imports."""
        site = site_packages(shiv_root)
        env = dict(os.environ, SHIV_ROOT=shiv_root)
        if BUILD_ID and os.path.isdir(site) and not os.environ.get("SHIV_FORCE_EXTRACT"):
            if not extraction_intact(pyz, site):
                env["SHIV_FORCE_EXTRACT"] = "1"
            elif python is None:
                sys.argv[0] = pyz
                sys.path.insert(0, site)
                from installer.commands.cli import main

                sys.exit(main())
        # isolated (-I): no PYTHON* variable reaches the root process (PYTHONPATH cannot add code to it);
        # what it needs comes as arguments and SHIV_* variables, which -I leaves alone
        python = python or sys.executable
        os.execve(python, zipapp_command(python, pyz), env)

    def zipapp_command(python, pyz):
        return [python, "-I"] + (["-B"] if sys.dont_write_bytecode else []) + [pyz] + sys.argv[1:]

    def zip_members(path):
        """{name: (CRC-32, size)} of a zip's files, from its central directory (``zipfile`` costs 15 ms to import,
        more than reading the directory). The directory is found from the end record, so a preamble before
        the zip (shiv's ``#!`` line) does not matter; no zip64 (the zipapp is far below its limits)."""
        import struct

        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 22 - 65535))
            tail = handle.read()
            end = tail.rfind(b"PK\x05\x06")
            if end < 0 or len(tail) < end + 22:
                raise ValueError("no end of central directory")
            count, length = struct.unpack("<H I", tail[end + 10:end + 16])
            handle.seek(size - len(tail) + end - length)
            directory = handle.read(length)
        members, at = {}, 0
        for _ in range(count):
            if directory[at:at + 4] != b"PK\x01\x02" or len(directory) < at + 46:
                raise ValueError("damaged central directory")
            crc, _, usize, nlen, elen, clen = struct.unpack("<I I I H H H", directory[at + 16:at + 34])
            name = directory[at + 46:at + 46 + nlen].decode("utf-8")
            if not name.endswith("/"):
                members[name] = (crc, usize)
            at += 46 + nlen + elen + clen
        return members

    def extraction_intact(pyz, site):
        """shiv trusts a folder it extracted once; this checks it against the zipapp: the same files, each
        with the zip's size and CRC-32 (some 25 ms for the 27 MB), no file more (``__pycache__`` aside)."""
        import zlib

        prefix = "site-packages/"
        try:
            expected = dict((name[len(prefix):], value) for name, value in zip_members(pyz).items()
                            if name.startswith(prefix))
            found = set()
            for folder, folders, names in os.walk(site):
                # byte code Python writes beside what it imports: it checks it against its source itself
                folders[:] = [name for name in folders if name != "__pycache__"]
                for name in names:
                    found.add(os.path.relpath(os.path.join(folder, name), site))
            if found != set(expected):
                return False
            for name, (crc, size) in expected.items():
                with open(os.path.join(site, name), "rb") as handle:
                    data = handle.read()
                if len(data) != size or zlib.crc32(data) != crc:
                    return False
        except (OSError, ValueError, UnicodeDecodeError):
            return False
        return True

    def file_sha256(path):
        import hashlib

        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def unpack(root, payload):
        """Write the carried zipapp to <root>/pyz/<sha>/actvt.pyz once (again when that copy no longer has the
        launcher's hash); remove older ones."""
        import base64
        import hashlib
        import lzma
        import shutil

        folder = os.path.join(root, "pyz")
        target = os.path.join(folder, PAYLOAD_SHA256[:16], PYZ_NAME)
        for path in (folder, os.path.dirname(target)):
            if not os.path.isdir(path):
                os.mkdir(path, 0o755)
                os.chmod(path, 0o755)
        remove_stale_copies(os.path.dirname(target))
        if os.path.isfile(target) and file_sha256(target) != PAYLOAD_SHA256:
            sys.stderr.write("actvt-installer: the cached copy %s is damaged; writing it again\n" % target)
            os.unlink(target)
        if not os.path.isfile(target):
            tmp = "%s.%d.tmp" % (target, os.getpid())
            digest = hashlib.sha256()
            try:
                packed = base64.b64decode(payload)
                unpacker = lzma.LZMADecompressor()
                with open(tmp, "wb") as handle:
                    for start in range(0, len(packed), 1 << 20):  # in pieces: memory stays low
                        chunk = unpacker.decompress(packed[start:start + (1 << 20)])
                        digest.update(chunk)
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
                ok = unpacker.eof and digest.hexdigest() == PAYLOAD_SHA256
            except (ValueError, lzma.LZMAError):
                ok = False
            if not ok:
                os.unlink(tmp)
                fail("the downloaded file is damaged (checksum mismatch); download it again")
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
        for name in os.listdir(folder):
            if name != PAYLOAD_SHA256[:16]:
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
        return target

    def remove_stale_copies(folder):
        """Half-written copies (``actvt.pyz.<pid>.tmp``) of launchers that were killed: their process is gone."""
        for name in os.listdir(folder):
            parts = name.split(".")
            if len(parts) == 4 and name.startswith(PYZ_NAME + ".") and parts[-1] == "tmp" and parts[2].isdigit():
                try:
                    os.kill(int(parts[2]), 0)
                    continue  # another launcher is writing it now
                except ProcessLookupError:
                    pass
                except OSError:
                    continue
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError:
                    pass

    def safe_umask():
        """Never looser than 022: with a umask of 000, the extraction (and whatever the installer's
        commands make) would be writable by every user; a stricter umask (077) is kept."""
        os.umask(os.umask(0o022) | 0o022)

    def kept_command_root():
        """The `actvt` command: the system cache when it already holds this build (readable by all)."""
        if os.geteuid() == 0 or os.path.isdir(site_packages(os.path.join(SYSTEM_CACHE, "shiv"))):
            return SYSTEM_CACHE
        return cache_root()

    def clean_environment(environ, root):
        """shiv's SHIV_* variables choose what the zipapp runs (SHIV_ENTRY_POINT, SHIV_INTERPRETER) and add to
        its import path (SHIV_PREPEND_PYTHONPATH, SHIV_EXTEND_PYTHONPATH): only the launcher sets them
        (SHIV_FORCE_EXTRACT, which only extracts the checked zipapp again, is kept). As root, the variables that
        make any Python started later (certbot, apt's hooks) load code from elsewhere go too."""
        for name in list(environ):
            if (name.startswith("SHIV_") and name != "SHIV_FORCE_EXTRACT") or (root and name in ROOT_UNSET):
                del environ[name]

    # --- a dry run writes nothing on the host ---------------------------------------------------------
    DRY_RUN = "--dry-run"
    #: where a dry run without a ready cache unpacks: the first that only root can rename entries of
    #: (mode 755, or sticky like /var/tmp) and that allows running code (Ubuntu mounts /run noexec)
    PRIVATE_PARENTS = ("/var/tmp", "/run", "/tmp", "/dev/shm")
    PRIVATE_PREFIX = "actvt-dry-run-"
    PRIVATE_LOCK = "in-use"
    STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def is_dry_run(argv):
        """Whether the installer takes these arguments as a dry run: argparse takes any unambiguous prefix
        (`--dry`) too (installer/commands/cli.py). Wherever the token stands: taking a real run for a dry
        one only costs it the cache."""
        return any(len(token) >= 3 and DRY_RUN.startswith(token.split("=", 1)[0]) for token in argv)

    def trusted_parent(path, sticky=True):
        """The real path of a folder that it and every folder above it are owned by root (or us) and that
        no one else can write, or can only add to (sticky: others cannot rename or remove what is ours),
        which the folder itself may be only with sticky; else None."""
        real = os.path.realpath(path)
        try:
            if not os.path.isdir(real):
                return None
            return owned_chain(real, os.geteuid(), lambda at: sticky or at != real)
        except OSError:
            return None

    def private_folder():
        """A new folder (0700, ours) that a dry run unpacks into, with its lock held (by this process and,
        inherited, by the installer's): (path, lock file). mkdtemp makes it with mkdir, which takes no
        link and no existing name, under a name nobody can guess, so nothing can be planted at it."""
        import fcntl
        import tempfile

        for parent in PRIVATE_PARENTS:
            real = trusted_parent(parent)
            if real is None:
                continue
            sweep_private(real)
            try:
                path = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=real)
            except OSError:
                continue
            if _usable(path, create=False):
                lock = open(os.path.join(path, PRIVATE_LOCK), "w")
                fcntl.flock(lock, fcntl.LOCK_EX)
                return path, lock
            os.rmdir(path)
        fail("found no folder only root can write that allows running code for the dry run (tried %s)"
             % ", ".join(PRIVATE_PARENTS))

    def sweep_private(parent):
        """Folders of dry runs that were killed (SIGKILL leaves no time to remove them): ours, 0700, and
        nobody holds their lock; one without a lock file only when it is an hour old (its launcher died
        between mkdtemp and the lock)."""
        import fcntl
        import shutil
        import stat
        import time

        try:
            names = [name for name in os.listdir(parent) if name.startswith(PRIVATE_PREFIX)]
        except OSError:
            return
        for name in names:
            path = os.path.join(parent, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o7777 != 0o700:
                    continue
                try:
                    fd = os.open(os.path.join(path, PRIVATE_LOCK), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except FileNotFoundError:
                    if time.time() - st.st_mtime < 3600:
                        continue
                else:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        continue  # a dry run uses it now
                    finally:
                        os.close(fd)
                shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue

    def ready_cache(payload):
        """(zipapp, shiv root) of a cache that already holds this build intact, which a dry run may run from
        as it is (it writes no byte code there), or None."""
        if os.environ.get("SHIV_FORCE_EXTRACT"):
            return None
        if payload is None:
            roots, pyz = [SYSTEM_CACHE], KEPT_PYZ
            if os.geteuid() != 0:
                roots.append(cache_candidates(os.environ)[0])
        else:
            roots, pyz = cache_candidates(os.environ), None
        for root in roots:
            if trusted_parent(root, sticky=False) is None:
                continue
            here = pyz or os.path.join(root, "pyz", PAYLOAD_SHA256[:16], PYZ_NAME)
            site = site_packages(os.path.join(root, "shiv"))
            try:
                if pyz is None and file_sha256(here) != PAYLOAD_SHA256:
                    continue
            except OSError:
                continue
            if BUILD_ID and os.path.isdir(site) and extraction_intact(here, site):
                return here, os.path.join(root, "shiv")
        return None

    def dry_run(payload, python):
        """Run a dry run from a ready cache as it is, else unpack into a private folder, run the installer
        in a child process and remove the folder when it ends, also on an error or a stop signal (each is
        passed on to the installer, which ends on its own; the status is the installer's)."""
        import shutil
        import signal
        import subprocess

        sys.dont_write_bytecode = True  # nor does Python write byte code, here or (-B) in the installer
        ready = ready_cache(payload)
        if ready:
            run(ready[0], ready[1], python)
        stops, child = [], []

        def stop(signum, frame):
            stops.append(signum)
            for process in child:
                process.send_signal(signum)

        for name in STOP_SIGNALS:
            signal.signal(getattr(signal, name), stop)
        folder, lock = private_folder()
        try:
            pyz = KEPT_PYZ if payload is None else unpack(folder, payload)
            env = dict(os.environ, SHIV_ROOT=os.path.join(folder, "shiv"))
            env.pop("SHIV_FORCE_EXTRACT", None)
            status = None
            if stops:
                sys.stderr.write("actvt-installer: stopped by %s before anything was changed\n"
                                 % signal.Signals(stops[0]).name)
                status = 128 + stops[0]
            else:
                child.append(subprocess.Popen(zipapp_command(python or sys.executable, pyz), env=env,
                                              pass_fds=(lock.fileno(),)))
                if stops:
                    child[0].send_signal(stops[0])
                status = child[0].wait()
        finally:
            lock.close()
            shutil.rmtree(folder, ignore_errors=True)
        if status < 0:  # the installer was killed by a signal: so is this process, for the same status
            signal.signal(-status, signal.SIG_DFL)
            os.kill(os.getpid(), -status)
        sys.exit(status)

    def main(payload):
        version, python = tuple(sys.version_info[:3]), None
        check_platform(version=None if supported(version) else OLDEST)  # all but the version: another Python mends it
        safe_umask()
        clean_environment(os.environ, os.geteuid() == 0)
        if not supported(version):
            # This interpreter still checks and writes the carried zipapp (this file keeps to 3.6's grammar and
            # standard library): the text it was given is not read twice, and the found one runs the result
            # as it would on an empty cache (-I, the same arguments and environment; exec keeps the status).
            python = other_python(version, os.environ)
        if is_dry_run(sys.argv[1:]):
            dry_run(payload, python)
        if payload is None:
            root = kept_command_root()
            run(KEPT_PYZ, os.path.join(root, "shiv"), python)
        root = cache_root()
        run(unpack(root, payload), os.path.join(root, "shiv"), python)

    PAYLOAD = None  # @PAYLOAD@
finally:
    # The end marker: `try` is incomplete without this clause, and in brackets no part of its last line parses.
    # (The body above only defines things; if it ever failed, the traceback would show that error first.)
    if __name__ == "__main__":
        (main(PAYLOAD))
