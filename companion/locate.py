"""Where a torrent's files are now: qBittorrent's renames applied to the torrent's layout.

The catalog's `files.path` is the path as qBittorrent has it (relative to the save path), which
differs from the .torrent's path after a rename; `catalog_meta` gives the TorrentMeta to hand to
the scanner, the store or a heal for a cataloged torrent.
"""

from dataclasses import replace
from pathlib import Path

from .errors import BadInput, NotFound
from .torrent import TorrentMeta, load_torrent


def located_meta(meta: TorrentMeta, qbt_files: list[dict]) -> TorrentMeta:
    """Apply qBittorrent's file names (`torrents/files`: index counts non-pad files) to meta."""
    real = meta.real_files
    names = {}
    for f in qbt_files:
        index = int(f["index"])
        if index >= len(real) or real[index].size != int(f["size"]):
            raise BadInput(meta.id, f"qBittorrent's file list does not match the torrent (file {index})")
        names[real[index].index] = str(f["name"]).replace("\\", "/")
    return with_paths(meta, names)


def wanted_files(meta: TorrentMeta, qbt_files: list[dict]) -> set[int] | None:
    """libtorrent indices of the files qBittorrent downloads and seeds (priority > 0); None when
    that is every file. Skipped files are not on disk, so they are neither verified nor protected."""
    real = meta.real_files
    skipped = {real[int(f["index"])].index for f in qbt_files
               if int(f.get("priority", 1)) == 0 and int(f["index"]) < len(real)}
    if not skipped:
        return None
    return {e.index for e in real if e.index not in skipped}


def with_paths(meta: TorrentMeta, paths: dict[int, str]) -> TorrentMeta:
    """meta with the given files (by libtorrent index) at other paths."""
    if all(meta.files[i].path == p for i, p in paths.items()):
        return meta
    files = tuple(replace(e, path=paths[e.index]) if e.index in paths else e for e in meta.files)
    return replace(meta, files=files)


def catalog_meta(catalog, torrent_id: str) -> tuple[TorrentMeta, Path]:
    """(meta with the cataloged paths, save path) of a cataloged torrent."""
    row = catalog.get_torrent(torrent_id)
    if row is None or not row["torrent_file"]:
        raise NotFound(f"no kept .torrent for {torrent_id} in the catalog")
    meta = load_torrent(row["torrent_file"])
    paths = {f["file_index"]: f["path"] for f in catalog.get_files(torrent_id)}
    return with_paths(meta, paths), Path(row["save_path"])
