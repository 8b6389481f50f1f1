"""The one lock every changing command holds (install, uninstall, ``actvt client``): a second run is
refused, not queued. A run refused here writes nothing, not even a log line (``errors.Refused``).

It lives in ``/run/actvt/`` (made 0755 by root; ``/run/lock`` is world-writable, so another user could
plant a link or a file there), is opened with ``O_NOFOLLOW``, and a lock file that is not a regular
file of root's is refused. What a held lock prints comes from the installer only: the holder's PID
when the file holds a number, nothing of the file's own content otherwise.
"""

import contextlib
import errno
import fcntl
import os
import re
import stat

from installer.core import paths
from installer.core.errors import LockedError, Refused
from installer.core.fs import Tree, UnsafePath, trusted_uids

_PID = re.compile(rb"\A([0-9]{1,10})\n?\Z")


@contextlib.contextmanager
def hold(root):
    """Hold the run lock under ``root`` (a ``paths.Root``) for the ``with`` block."""
    tree = Tree(root)
    try:
        tree.make_dir(paths.LOCK_DIR, 0o755)
    except UnsafePath as exc:
        raise Refused(str(exc)) from None
    folder, name = tree.parent(paths.LOCK_FILE, writable=True)
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600,
                     dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            raise Refused(f"{paths.LOCK_FILE} is a symbolic link or a FIFO, not the installer's lock; "
                          "remove it and run again") from None
        raise
    finally:
        os.close(folder)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in trusted_uids():
            raise Refused(f"{paths.LOCK_FILE} is not the installer's lock (not a regular file of root's); "
                          "remove it and run again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found = _PID.match(os.pread(fd, 16, 0))
            holder = f"pid {int(found.group(1))}" if found else "pid unknown"
            raise LockedError(f"another actvt installer is running ({holder}); wait for it to finish "
                              f"and run again (lock: {paths.LOCK_FILE})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
