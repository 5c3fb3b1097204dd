"""The piece plan: which byte ranges of which files make piece N (pure)."""

from dataclasses import dataclass

from .torrent import FileEntry, TorrentMeta


@dataclass(frozen=True)
class Segment:
    """The part of one file that lies in one piece: a piece-aligned segment (a chunk)."""

    file_index: int
    piece: int
    offset: int  # inside the file
    length: int
    whole_piece: bool  # the piece is made of this segment alone


def file_segments(meta: TorrentMeta, entry: FileEntry) -> list[Segment]:
    """The piece-aligned segments of one file, in order."""
    out = []
    pl = meta.piece_length
    for piece in meta.file_pieces(entry):
        start = max(piece * pl, entry.offset)
        end = min((piece + 1) * pl, entry.offset + entry.size)
        whole = start == piece * pl and end == piece * pl + meta.piece_size(piece)
        out.append(Segment(entry.index, piece, start - entry.offset, end - start, whole))
    return out


def piece_plan(meta: TorrentMeta, piece: int) -> list[tuple[FileEntry, int, int]]:
    """(file, offset in file, length) for every file or pad file that makes `piece`."""
    pl = meta.piece_length
    start, end = piece * pl, piece * pl + meta.piece_size(piece)
    out = []
    for entry in meta.files:
        if entry.size == 0 or entry.offset + entry.size <= start:
            continue
        if entry.offset >= end:
            break
        lo = max(start, entry.offset)
        hi = min(end, entry.offset + entry.size)
        out.append((entry, lo - entry.offset, hi - lo))
    return out


def files_of_piece(meta: TorrentMeta, piece: int) -> list[FileEntry]:
    return [entry for entry, _, _ in piece_plan(meta, piece) if not entry.pad]
