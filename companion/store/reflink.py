"""Copy-on-write clones (FICLONERANGE) where the filesystem has them (btrfs, XFS), else no-op.

Used by restore: a chunk already read and verified from a pack is cloned into the restored
file instead of written again, so a restore on the store's filesystem costs no extra space
and no write bandwidth. Offsets must be block-aligned (packs align chunks to ALIGN); a
failure (ext4, tmpfs, different filesystems, unaligned range) is remembered per device pair
and the caller falls back to a byte copy.
"""

import errno
import fcntl
import os
import struct
import threading

ALIGN = 4096
FICLONERANGE = 0x4020940D  # _IOW(0x94, 13, struct file_clone_range)
_unsupported: set[tuple[int, int]] = set()
_lock = threading.Lock()
_FALLBACK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EBADF}


def clone_range(src_path, src_offset: int, dst_fd: int, dst_offset: int, length: int) -> bool:
    """Clone `length` bytes; True when done, False when the caller must copy bytes."""
    if src_offset % ALIGN or dst_offset % ALIGN or length % ALIGN:
        return False
    dst_dev = os.fstat(dst_fd).st_dev
    try:
        src_fd = os.open(src_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        key = (os.fstat(src_fd).st_dev, dst_dev)
        if key in _unsupported:
            return False
        try:
            fcntl.ioctl(dst_fd, FICLONERANGE, struct.pack("qQQQ", src_fd, src_offset, length, dst_offset))
            return True
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.ENOSYS):
                with _lock:
                    _unsupported.add(key)
            if exc.errno in _FALLBACK:
                return False
            raise
    finally:
        os.close(src_fd)


def supported(dir_a, dir_b) -> bool:
    """Whether files in dir_a can be cloned into dir_b (tries one 4 KiB clone)."""
    import tempfile

    with tempfile.NamedTemporaryFile(dir=dir_a) as src, tempfile.NamedTemporaryFile(dir=dir_b) as dst:
        src.write(bytes(ALIGN))
        src.flush()
        return clone_range(src.name, 0, dst.fileno(), 0, ALIGN)
