#!/usr/bin/env python3
# actvt-installer launcher.
#
# This text file is what `curl -fsSL https://…/install.pyz | python3 -I -` runs (or `python3 -`). CPython cannot read a
# binary zipapp from a pipe, so, like get-pip.py, it carries the shiv-built zipapp (xz-compressed,
# as base64 text) at its end, writes it once to a root-owned cache and runs it. The same file, without the payload and
# pointed at the copy kept on the server, is the `actvt` command.
#
# It uses the standard library only and parses on any Python 3, so that an unsupported interpreter
# gets a clear message instead of a traceback.
import os
import sys

VERSION = "@VERSION@"
BUILD_ID = "@BUILD_ID@"  # shiv build id of the zipapp: names its extraction folder
PAYLOAD_SHA256 = "@PAYLOAD_SHA256@"
KEPT_PYZ = "@KEPT_PYZ@"  # the `actvt` command: path of the zipapp kept on the server
PYZ_NAME = "actvt.pyz"
SYSTEM_CACHE = "/var/cache/actvt"
OLDEST, NEWEST = (3, 9), (3, 14)
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
MIN_GLIBC = (2, 28)


def fail(message):
    sys.stderr.write("actvt-installer: " + message + "\n")
    sys.exit(1)


def check_platform(machine=None, version=None, libc=None, system=None, implementation=None):
    """Stop with a clear message unless this is Linux x86_64/aarch64, glibc >= 2.28, CPython 3.9-3.14."""
    system = system or sys.platform
    implementation = implementation or sys.implementation.name
    version = version or tuple(sys.version_info[:2])
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
    if not OLDEST <= version <= NEWEST:
        fail("needs Python %d.%d to %d.%d (this is %d.%d)" % (OLDEST + NEWEST + version))
    if machine not in ARCHES:
        fail("supports x86_64 and aarch64 (this machine is %s)" % machine)
    parts = libc.split()
    try:
        glibc = tuple(int(n) for n in parts[1].split(".")[:2]) if parts[0] == "glibc" else None
    except (IndexError, ValueError):
        glibc = None
    if glibc is None or glibc < MIN_GLIBC:
        fail("needs glibc %d.%d or newer (found: %s)" % (MIN_GLIBC + (libc or "no glibc",)))
    return ARCHES[machine]


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


def cache_root(environ=None):
    """Root: /var/cache/actvt. Others: the XDG cache, then per-user folders that allow exec."""
    environ = os.environ if environ is None else environ
    uid = os.geteuid()
    if uid == 0:
        candidates = [SYSTEM_CACHE]
    else:
        home = environ.get("HOME") or os.path.expanduser("~")
        candidates = [
            os.path.join(environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "actvt"),
            "/var/tmp/actvt-%d" % uid,
            "/tmp/actvt-%d" % uid,
            "/dev/shm/actvt-%d" % uid,
        ]
    for path in candidates:
        if _usable(path):
            if uid == 0:
                os.chmod(path, 0o755)  # readable by all: the `actvt` command of other users runs from it
            return path
    fail("found no writable folder that allows running code for its cache (tried %s)" % ", ".join(candidates))


def site_packages(shiv_root):
    return os.path.join(shiv_root, PYZ_NAME + "_" + BUILD_ID, "site-packages")


def run(pyz, shiv_root):
    """Run the zipapp: in this process when shiv already extracted it, else through shiv."""
    site = site_packages(shiv_root)
    if BUILD_ID and os.path.isdir(site) and not os.environ.get("SHIV_FORCE_EXTRACT"):
        sys.argv[0] = pyz
        sys.path.insert(0, site)
        from installer.commands.cli import main

        sys.exit(main())
    os.environ["SHIV_ROOT"] = shiv_root
    # isolated (-I): no PYTHON* variable reaches the root process (PYTHONPATH cannot add code to it);
    # what it needs comes as arguments and SHIV_* variables, which -I leaves alone
    os.execv(sys.executable, [sys.executable, "-I", pyz] + sys.argv[1:])


def unpack(root, payload):
    """Write the carried zipapp to <root>/pyz/<sha>/actvt.pyz once; remove older ones."""
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


def main(payload):
    check_platform()
    safe_umask()
    if payload is None:
        root = kept_command_root()
        run(KEPT_PYZ, os.path.join(root, "shiv"))
    root = cache_root()
    run(unpack(root, payload), os.path.join(root, "shiv"))


PAYLOAD = None  # @PAYLOAD@

if __name__ == "__main__":
    main(PAYLOAD)
