"""Files and folders on a host that other users share: opened without following what they planted.

The installer runs as root on servers with other local users, and under ``--root`` on a tree that
stands for a server. Every path it reads or writes under the root goes through here, one component
at a time, holding a file descriptor for each folder (``openat``), so a name swapped half-way cannot
redirect it. The rules:

- **Links.** A symbolic link on the way (a folder, or a file that is read) is followed only when
  root could alone have made it: the link is owned by root (or by the user running the installer)
  and sits in a folder that nobody else can write. Any other link is refused with a message naming
  it; the files the installer writes are never followed (they are replaced by ``rename``). Links are
  resolved inside the root: under ``--root`` an absolute link points into the tree, and ``..`` stops
  at the tree's top, so nothing outside it is ever written or chmod-ed.
- **Folders written into or read from** (a record) must be owned by root (or the running user), and
  writable by nobody else: not by others (no ``/tmp``-like folder), and by a group only when it is
  root's (gid 0, whose members are root's peers anyway) or the running user's. ``check_folders``
  says so of every existing folder on the way to what a plan writes, before its first write, in
  one line naming the folder, its owner and mode, and the command that fixes it.
- **Records** (``read_record``) are read only from files that root (or the running user) owns and
  nobody else can write, in such folders.
- **Special files.** A FIFO, socket or device where a regular file is expected is refused at once
  (opened with ``O_NONBLOCK``, never read), so a planted FIFO cannot hang the run.
- **Modes.** Folders and files get their mode with ``fchmod`` after they are made, so the caller's
  umask (000 or 077) does not matter; a file has its final mode and owner before its first byte.

``UnsafePath`` is the one error: it names the path and says what to do.
"""

import errno
import grp
import os
import pwd
import secrets
import stat
from typing import Callable, Iterator, List, Mapping, Optional, Tuple

from installer.core.errors import ActvtError

MAX_LINKS = 40
TMP_MARK = ".actvt-tmp-"  # in every temporary name, so that a later run recognises and removes them
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(ActvtError):
    """A path the installer will not use as it is (a planted link, a FIFO, a world-writable folder)."""


def trusted_uids() -> Tuple[int, ...]:
    return (0, os.geteuid())


def trusted_gids() -> Tuple[int, ...]:
    """Groups whose write access is no one else's: root's, and the running user's (a user's own
    group, as umask 002 leaves it, when the installer runs as that user under --root or on a CA folder)."""
    return (0, os.getegid())


def owner_names(st: os.stat_result) -> Tuple[str, str]:
    """The owner and group of ``st`` by name (their numbers when this machine has no such name)."""
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return owner, group


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISREG, "regular file")):
        if test(mode):
            return name
    return "special file"


Owners = Tuple[Tuple[int, ...], Tuple[int, ...]]  # (uids, gids) trusted besides root's and the running user's
NOBODY_ELSE: Owners = ((), ())


def trusted(st: os.stat_result, uids: Tuple[int, ...] = (), gids: Tuple[int, ...] = ()) -> bool:
    """Only root (or the running user) can change this folder or file: it is theirs (or ``uids``'s,
    an owner the installer itself gives), nobody else may write it, and a group only when it is
    root's or the running user's (or one of ``gids``)."""
    return (st.st_uid in trusted_uids() + tuple(uids) and not st.st_mode & 0o002
            and not (st.st_mode & 0o020 and st.st_gid not in trusted_gids() + tuple(gids)))


def _trusted_link(link: os.stat_result, parent: os.stat_result) -> bool:
    return link.st_uid in trusted_uids() and trusted(parent)


def foreign_message(shown: str, fix: str, st: os.stat_result) -> str:
    """The one line that refuses a folder (or a record) another user could change: who owns it, its
    mode, and the command that makes it root's alone. ``shown``: its server path; ``fix``: its path
    on this machine (they differ under --root)."""
    owner, group = owner_names(st)
    mode = stat.S_IMODE(st.st_mode)
    why = ", world-writable" if mode & 0o002 else f", writable by group {group}" if mode & 0o020 else ""
    if stat.S_ISDIR(st.st_mode):
        return (f"refusing to write into {shown}: it is owned by uid {st.st_uid} ({owner}:{group}, mode {mode:04o}"
                f"{why}), so another user could change what the installer keeps there; fix it with "
                f"`chown root:root {fix}; chmod go-w {fix}`, then run again")
    return (f"refusing to read {shown}: it is owned by uid {st.st_uid} ({owner}:{group}, mode {mode:04o}{why}), not "
            f"written by the installer alone; check who wrote it and move it away (if it is the installer's: "
            f"`chown root:root {fix}; chmod go-w {fix}`), then run again")


class Tree:
    """The filesystem under ``root`` (a ``paths.Root``), walked safely. Server paths are absolute."""

    def __init__(self, root):
        self.root = root

    # -- walking ---------------------------------------------------------------------------------

    def _open_top(self) -> int:
        return os.open(self.root.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _walk(self, parts: List[str], shown: str, create: Optional[int] = None,
              created: Optional[List[str]] = None, last_mode: Optional[int] = None) -> int:
        """A descriptor of the folder reached by ``parts`` (each a name), following only trusted links.
        ``create``: mode for missing folders (each recorded in ``created`` as a server path);
        ``last_mode``: the mode of the last one, when it is made."""
        top = self._open_top()
        stack = [top]  # descriptors from the root down; stack[0] is the root
        names: List[str] = []  # server path of stack[-1], as names
        todo = list(parts)
        links = 0
        try:
            while todo:
                name = todo.pop(0)
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                        names.pop()
                    continue
                fd = stack[-1]
                here = "/" + "/".join(names + [name])
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if create is None:
                        raise
                    self._check_writable(fd, "/" + "/".join(names))
                    try:
                        os.mkdir(name, 0o700, dir_fd=fd)
                    except FileExistsError:  # made by another process meanwhile (two runs at once): look again
                        todo.insert(0, name)
                        continue
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    os.fchmod(child, last_mode if last_mode is not None and not todo else create)
                    stack.append(child)
                    names.append(name)
                    if created is not None:
                        created.append(here)
                    continue
                if stat.S_ISLNK(st.st_mode):
                    if not _trusted_link(st, os.fstat(fd)):
                        raise UnsafePath(self._link_message(here, st, shown))
                    links += 1
                    if links > MAX_LINKS:
                        raise UnsafePath(f"{shown}: too many symbolic links on the way ({here})")
                    target = os.readlink(name, dir_fd=fd)
                    if target.startswith("/"):  # inside the root, as the server would see it
                        while len(stack) > 1:
                            os.close(stack.pop())
                        names.clear()
                    todo = target.split("/") + todo
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise UnsafePath(f"{shown}: {here} is a {kind_of(st.st_mode)}, not a directory; "
                                     "move it away and run again")
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:  # swapped for a link between the two calls
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnsafePath(f"{shown}: {here} changed while it was opened; run again") from None
                    raise
                stack.append(child)
                names.append(name)
            return stack.pop()
        finally:
            for fd in stack:
                os.close(fd)

    @staticmethod
    def _link_message(here: str, st: os.stat_result, shown: str) -> str:
        return (f"refusing {shown}: {here} is a symbolic link that root did not make (owned by uid {st.st_uid}, "
                "or in a folder others can write); the installer does not follow it. Remove it (and check who "
                "made it), then run again")

    def _check_writable(self, fd: int, shown: str) -> None:
        st = os.fstat(fd)
        if not trusted(st):
            raise UnsafePath(foreign_message(*self._names(shown or "/"), st))

    def _names(self, path: str) -> Tuple[str, str]:
        """(the path as the message names it, its path on this machine): the server path, unless the
        root puts it elsewhere than under the same name (a CA folder), then the path on this machine."""
        here = self.root.host(path)
        return (path if here == os.path.join(self.root.root, path.lstrip("/")) else here), here

    def check_folders(self, folders: Mapping[str, Owners],
                      allowed: Callable[[str], Owners] = lambda path: NOBODY_ELSE) -> None:
        """Every existing folder on the way to each of ``folders`` (server paths; each with the owners
        the installer itself gives it) and the folder itself: only root (or ``allowed(folder)``) can
        change it, else ``UnsafePath`` with the one line that names it and its fix. Missing folders
        are the installer's to make; what is not a folder is left to the action that meets it."""
        seen = set()
        for folder, own in folders.items():
            names = [name for name in folder.split("/") if name]
            for depth in range(len(names) + 1):
                here = "/" + "/".join(names[:depth])
                extra = allowed(here)
                if depth == len(names):
                    extra = (extra[0] + own[0], extra[1] + own[1])
                if (here, extra) in seen:
                    continue
                seen.add((here, extra))
                try:
                    fd = self.open_dir(here)
                except ValueError:  # no place in a CA folder (above its top): the top itself is checked
                    continue
                except (FileNotFoundError, NotADirectoryError):
                    break
                try:
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
                if not trusted(st, *extra):
                    raise UnsafePath(foreign_message(*self._names(here), st))

    def _split(self, path: str) -> Tuple[List[str], str]:
        parts = self.root.relative(path)
        if not parts:
            return [], ""
        return parts[:-1], parts[-1]

    def parent(self, path: str, create: Optional[int] = None, created: Optional[List[str]] = None,
               writable: bool = False) -> Tuple[int, str]:
        """(descriptor of the folder holding ``path``, its last name). ``create``: make missing folders
        with this mode. ``writable``: the folder must be one the installer may write into."""
        folders, name = self._split(path)
        fd = self._walk(folders, path, create, created)
        if writable:
            try:
                self._check_writable(fd, "/" + "/".join(folders))
            except BaseException:
                os.close(fd)
                raise
        return fd, name

    def open_dir(self, path: str, create: Optional[int] = None, created: Optional[List[str]] = None) -> int:
        folders, name = self._split(path)
        return self._walk(folders + ([name] if name else []), path, create, created)

    # -- reading ---------------------------------------------------------------------------------

    def lstat(self, path: str) -> Optional[os.stat_result]:
        """The entry at ``path`` itself (a link is not followed); None when nothing is there."""
        try:
            fd, name = self.parent(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            if not name:
                return os.fstat(fd)
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return self.lstat(path) is not None

    def is_dir(self, path: str) -> bool:
        """A real folder (or a trusted link to one)."""
        try:
            os.close(self.open_dir(path))
            return True
        except (FileNotFoundError, NotADirectoryError, UnsafePath):
            return False

    def _open_file(self, path: str, follow: bool) -> Optional[int]:
        """A read descriptor of the regular file at ``path``; None when absent. ``follow``: a trusted
        link as the last name is followed (certbot's live/ links); otherwise links are refused."""
        folders, name = self._split(path)
        for _ in range(MAX_LINKS):
            try:
                fd = self._walk(folders, path)
            except (FileNotFoundError, NotADirectoryError):
                return None
            try:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    return None
                if stat.S_ISLNK(st.st_mode):
                    if not follow or not _trusted_link(st, os.fstat(fd)):
                        raise UnsafePath(self._link_message(path, st, path))
                    target = os.readlink(name, dir_fd=fd)
                    base = "" if target.startswith("/") else "/" + "/".join(folders)
                    resolved = os.path.normpath(f"{base}/{target}")
                    folders, name = self._split(resolved if resolved.startswith("/") else "/" + resolved)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise UnsafePath(f"{path} is a {kind_of(st.st_mode)}, not a regular file; it was not read. "
                                     "Remove it and run again")
                try:
                    handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENXIO):
                        raise UnsafePath(f"{path} changed while it was opened; run again") from None
                    raise
                if not stat.S_ISREG(os.fstat(handle).st_mode):
                    os.close(handle)
                    raise UnsafePath(f"{path} is not a regular file; it was not read. Remove it and run again")
                return handle
            finally:
                os.close(fd)
        raise UnsafePath(f"{path}: too many symbolic links")

    def read(self, path: str, follow: bool = True, limit: Optional[int] = None) -> Optional[bytes]:
        """The content of the regular file at ``path``, or None when there is none."""
        fd = self._open_file(path, follow)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read() if limit is None else handle.read(limit)

    def read_record(self, path: str, any_owner: bool = False,
                    allowed: Callable[[str], Owners] = lambda path: NOBODY_ELSE) -> Optional[bytes]:
        """The content of one of the installer's records (None when there is none), read only when
        the file and every folder on the way to it are root's (or ``allowed``'s) alone
        (``check_folders``); else ``UnsafePath`` naming what another user owns or can write.
        ``any_owner``: a backup, which keeps its original's owner; the root-only folders above it are
        what keep it the installer's."""
        fd = self._open_file(path, follow=True)  # a planted link or FIFO is refused as such, first
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as handle:
            self.check_folders({os.path.dirname(path.rstrip("/")) or "/": NOBODY_ELSE}, allowed)
            st = os.fstat(handle.fileno())
            if not any_owner and not trusted(st, *allowed(path)):
                raise UnsafePath(foreign_message(*self._names(path), st))
            return handle.read()

    def open_read(self, path: str, follow: bool = True):
        """A binary file object for reading ``path`` in pieces (a large copy); None when absent."""
        fd = self._open_file(path, follow)
        return None if fd is None else os.fdopen(fd, "rb")

    def listdir(self, path: str) -> List[str]:
        """Names in the folder ``path`` (empty when there is no such folder)."""
        try:
            fd = self.open_dir(path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def readlink(self, path: str) -> Optional[str]:
        try:
            fd, name = self.parent(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return os.readlink(name, dir_fd=fd)
        except (FileNotFoundError, OSError):
            return None
        finally:
            os.close(fd)

    # -- writing ---------------------------------------------------------------------------------

    def write(self, path: str, content: Optional[bytes], mode: int, ids: Optional[Tuple[int, int]] = None,
              source=None, create: int = 0o755, created: Optional[List[str]] = None) -> None:
        """Replace ``path`` atomically: a new temporary file beside it (``O_EXCL``, never a link) gets
        its final mode and owner, then the content (or ``source``, a binary file object, copied in
        blocks), fsync, rename over the target, fsync of the folder."""
        fd, name = self.parent(path, create=create, created=created, writable=True)
        tmp = None
        try:
            for _ in range(20):
                tmp = f".{name[:200]}{TMP_MARK}{secrets.token_hex(4)}"
                try:
                    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                                  dir_fd=fd)
                    break
                except FileExistsError:
                    continue
            else:
                raise UnsafePath(f"cannot make a temporary file beside {path}")
            try:
                if ids is not None:
                    os.fchown(out, *ids)
                os.fchmod(out, mode)
                with os.fdopen(out, "wb") as handle:
                    out = None
                    if source is None:
                        handle.write(content)
                    else:
                        while True:
                            block = source.read(1 << 20)
                            if not block:
                                break
                            handle.write(block)
                    handle.flush()
                    os.fsync(handle.fileno())
            finally:
                if out is not None:
                    os.close(out)
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            tmp = None
            os.fsync(fd)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except FileNotFoundError:
                    pass
            os.close(fd)

    def make_dir(self, path: str, mode: int, ids: Optional[Tuple[int, int]] = None,
                 created: Optional[List[str]] = None, parents: int = 0o755) -> None:
        """A folder with exactly ``mode`` (and owner), made when missing (its parents with ``parents``);
        a trusted link to a folder is followed, any other link refused."""
        folders, name = self._split(path)
        fd = self._walk(folders + [name], path, create=parents, created=created, last_mode=mode)
        try:
            if ids is not None:
                os.fchown(fd, *ids)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def symlink(self, path: str, target: str, created: Optional[List[str]] = None) -> None:
        """``path`` -> ``target``, replacing what is there atomically (a temporary link, renamed)."""
        fd, name = self.parent(path, create=0o755, created=created, writable=True)
        try:
            tmp = f".{name[:200]}{TMP_MARK}{secrets.token_hex(4)}"
            os.symlink(target, tmp, dir_fd=fd)
            try:
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                os.unlink(tmp, dir_fd=fd)
                raise
        finally:
            os.close(fd)

    def remove(self, path: str) -> None:
        """Remove the file, link or folder (with what it holds) at ``path``; links are not followed."""
        fd, name = self.parent(path, writable=True)
        try:
            _remove_at(fd, name)
        finally:
            os.close(fd)

    def rmdir(self, path: str) -> None:
        fd, name = self.parent(path, writable=True)
        try:
            os.rmdir(name, dir_fd=fd)
        finally:
            os.close(fd)

    def set_meta(self, path: str, mode: int, ids: Optional[Tuple[int, int]] = None) -> None:
        """Mode and owner of the existing file or folder at ``path`` (never through a link)."""
        fd, name = self.parent(path, writable=True)
        try:
            target = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        try:
            if ids is not None:
                os.fchown(target, *ids)
            os.fchmod(target, mode)
        finally:
            os.close(target)

    def copy_entry(self, path: str, dest: str, keep_owner: bool) -> None:
        """Copy the file, link or folder at ``path`` to ``dest`` (a backup): content, mode, times and,
        with ``keep_owner``, owner; links are copied as links."""
        st = self.lstat(path)
        if st is None:
            return
        owner = (st.st_uid, st.st_gid) if keep_owner else None
        if stat.S_ISLNK(st.st_mode):
            self.symlink(dest, self.readlink(path) or "")
        elif stat.S_ISDIR(st.st_mode):
            self.make_dir(dest, stat.S_IMODE(st.st_mode), owner, parents=0o700)
            for child in self.listdir(path):
                self.copy_entry(f"{path.rstrip('/')}/{child}", f"{dest.rstrip('/')}/{child}", keep_owner)
            return
        elif stat.S_ISREG(st.st_mode):
            source = self.open_read(path, follow=False)
            with source:
                self.write(dest, None, stat.S_IMODE(st.st_mode), owner, source=source, create=0o700)
        else:
            raise UnsafePath(f"{path} is a {kind_of(st.st_mode)}; it cannot be backed up. Remove it and run again")
        fd, name = self.parent(dest)
        try:
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=fd, follow_symlinks=False)
        except (NotImplementedError, OSError):
            pass
        finally:
            os.close(fd)

    def leftovers(self, folders) -> Iterator[str]:
        """Temporary files of interrupted runs (``.<name>.actvt-tmp-<hex>``) in these folders."""
        for folder in dict.fromkeys(folders):
            try:
                names = self.listdir(folder)
            except UnsafePath:
                continue
            for name in names:
                if name.startswith(".") and TMP_MARK in name:
                    yield f"{folder.rstrip('/')}/{name}"


def _remove_at(fd: int, name: str) -> None:
    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=fd)
        return
    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
    try:
        for entry in os.listdir(child):
            _remove_at(child, entry)
    finally:
        os.close(child)
    os.rmdir(name, dir_fd=fd)


def walk_files(tree: Tree, folder: str, accept: Callable[[str], bool] = lambda name: True) -> Iterator[str]:
    """Server paths of the regular files directly in ``folder`` (links and special files skipped)."""
    for name in tree.listdir(folder):
        path = f"{folder.rstrip('/')}/{name}"
        st = tree.lstat(path)
        if st is not None and stat.S_ISREG(st.st_mode) and accept(name):
            yield path
