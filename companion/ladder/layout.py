"""Where media files keep their metadata (pure, over the first and last bytes of a file).

Taggers write where the container keeps its metadata: FLAC metadata blocks (cover art, Vorbis
comments, padding) and ID3v2 tags at the head, ID3v1/APEv2 tags at the tail, the MP4 `moov` box
(head with faststart, else tail), the Matroska EBML header and the Segment's elements before the
first Cluster (SeekHead, Info, Tracks, Tags, Attachments, Void padding). `extents` reads those
structures and says how many bytes at each end they span; the zones tier keeps at least that.
"""

from dataclasses import dataclass

PROBE = 64 * 1024  # bytes read at each end to find the structures (more are read when a header says so)


@dataclass(frozen=True)
class Extents:
    head: int = 0  # bytes of metadata at the start of the file
    tail: int = 0  # bytes of metadata at the end
    kind: str = ""  # flac | mp3 | mp4 | mkv | ""


def _syncsafe(b: bytes) -> int:
    return (b[0] << 21) | (b[1] << 14) | (b[2] << 7) | b[3]


def id3v2_size(head: bytes) -> int:
    """Bytes of an ID3v2 tag at the start (header, frames, padding, footer), else 0."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    return 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)


def flac_size(read, start: int) -> int:
    """End offset of FLAC's metadata blocks starting at `start` ("fLaC"), else 0."""
    if read(start, 4) != b"fLaC":
        return 0
    pos = start + 4
    while True:
        hdr = read(pos, 4)
        if len(hdr) < 4:
            return 0
        pos += 4 + int.from_bytes(hdr[1:4], "big")
        if hdr[0] & 0x80:
            return pos


def mp4_boxes(read, size: int) -> list[tuple[str, int, int]]:
    """Top-level (type, offset, length) boxes of an ISO-BMFF file, [] when it is not one."""
    out, pos = [], 0
    while pos + 8 <= size:
        hdr = read(pos, 16)
        length, kind = int.from_bytes(hdr[:4], "big"), hdr[4:8]
        if length == 1 and len(hdr) >= 16:
            length = int.from_bytes(hdr[8:16], "big")
        elif length == 0:
            length = size - pos
        if length < 8 or not all(32 <= c < 127 for c in kind):
            return out if out and out[0][0] == "ftyp" else []
        out.append((kind.decode(), pos, length))
        pos += length
    return out if out and out[0][0] == "ftyp" else []


def _vint(read, pos: int) -> tuple[int, int] | None:
    """An EBML variable-length integer at pos: (value, bytes used); value -1 for unknown size."""
    first = read(pos, 1)
    if not first:
        return None
    b = first[0]
    for n in range(1, 9):
        if b & (0x80 >> (n - 1)):
            raw = read(pos, n)
            if len(raw) < n:
                return None
            value = int.from_bytes(raw, "big") & ((1 << (7 * n)) - 1)
            return (-1 if value == (1 << (7 * n)) - 1 else value), n
    return None


def _ebml_id(read, pos: int) -> tuple[int, int] | None:
    first = read(pos, 1)
    if not first:
        return None
    for n in range(1, 5):
        if first[0] & (0x80 >> (n - 1)):
            raw = read(pos, n)
            return (int.from_bytes(raw, "big"), n) if len(raw) == n else None
    return None


EBML, SEGMENT, CLUSTER = 0x1A45DFA3, 0x18538067, 0x1F43B675


def mkv_head(read, size: int) -> int:
    """Offset of the first Cluster of a Matroska/WebM file (everything before is metadata), else 0."""
    got = _ebml_id(read, 0)
    if got is None or got[0] != EBML:
        return 0
    ln = _vint(read, got[1])
    if ln is None or ln[0] < 0:
        return 0
    pos = got[1] + ln[1] + ln[0]
    got = _ebml_id(read, pos)
    if got is None or got[0] != SEGMENT:
        return 0
    ln = _vint(read, pos + got[1])
    if ln is None:
        return 0
    pos += got[1] + ln[1]
    for _ in range(4096):  # the Segment's children, up to the first Cluster
        got = _ebml_id(read, pos)
        if got is None:
            return 0
        if got[0] == CLUSTER:
            return pos
        ln = _vint(read, pos + got[1])
        if ln is None or ln[0] < 0:
            return 0
        pos += got[1] + ln[1] + ln[0]
        if pos >= size:
            return 0
    return 0


def tail_tags(tail: bytes) -> int:
    """Bytes of ID3v1 and APEv2 tags at the end of `tail` (the file's last bytes)."""
    n = 0
    if len(tail) >= 128 and tail[-128:-125] == b"TAG":
        n = 128
    end = len(tail) - n
    if end >= 32 and tail[end - 32 : end - 24] == b"APETAGEX":
        ape = int.from_bytes(tail[end - 20 : end - 16], "little")  # footer + items
        has_header = tail[end - 9] & 0x80
        n += ape + (32 if has_header else 0)
    return n


def extents(read, size: int) -> Extents:
    """The metadata at each end of a file. read(offset, length) -> bytes (short at the end)."""
    if size <= 0:
        return Extents()
    head = read(0, min(size, PROBE))
    tail_bytes = read(max(0, size - PROBE), min(size, PROBE))
    tail = min(size, tail_tags(tail_bytes))
    id3 = id3v2_size(head)
    flac = flac_size(read, id3)
    if flac:
        return Extents(min(size, flac), tail, "flac")
    if id3:
        return Extents(min(size, id3), tail, "mp3")
    boxes = mp4_boxes(read, size)
    if boxes:
        data = [b for b in boxes if b[0] == "mdat"]
        first_mdat = data[0][1] if data else size
        after = [b for b in boxes if b[1] > first_mdat and b[0] != "mdat"]
        tail_mp4 = size - min(b[1] for b in after) if after else 0
        return Extents(first_mdat + (16 if data else 0), max(tail, tail_mp4), "mp4")
    mkv = mkv_head(read, size)
    if mkv:
        return Extents(mkv, tail, "mkv")
    return Extents(0, tail, "")


def file_reader(path):
    """read(offset, length) over a file, for `extents`."""
    fh = open(path, "rb")

    def read(offset: int, length: int) -> bytes:
        fh.seek(offset)
        return fh.read(length)

    read.close = fh.close
    return read
