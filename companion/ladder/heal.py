"""Heal a drifted torrent from the ladder's supply with the one heal writer (drift/heal.py):
every byte is checked against the torrent before anything is written, the drifted bytes are kept
in quarantine (a rebuilt file's drifted copy is moved there whole: a rename on the same
filesystem), then the written pieces are verified again."""

from dataclasses import replace

from ..drift import heal as writer
from ..drift.classify import DAMAGED, REPLACED


def heal_from_supply(meta, save_path, damages, supply, quarantine_root):
    """(Quarantined, WriteResult) like drift.heal.heal_files. Raises HealError / StoreCorrupt
    before any write when a byte does not prove out; the supply's staged files are then removed.
    A file whose every hard link is another seeded torrent's (supply.shared) is written in place,
    healing all of them; the caller stops and resumes every torrent in supply.shared together."""
    # Cross-seeds sharing one inode (every link a seeded torrent's file): healed once, in place.
    damages = [replace(d, drift=replace(d.drift, hardlinked=False)) if d.entry.index in supply.shared else d
               for d in damages]
    # A file rewritten at the same size whose bytes did not move: its changed pieces, in place.
    damages = [replace(d, drift=replace(d.drift, kind=DAMAGED)) if d.entry.index in supply.in_place else d
               for d in damages]
    in_place = [d for d in damages if d.entry.index not in supply.rebuilt]
    try:
        staged = writer.stage(meta, save_path, in_place, supply.chunk_ids, supply.read_chunk, quarantine_root)
    except BaseException:
        supply.discard()
        raise
    whole = [replace(d, drift=replace(d.drift, kind=REPLACED)) if d.entry.index in supply.rebuilt else d
             for d in damages]
    for d in whole:
        if d.entry.index in supply.rebuilt:
            staged.files[d.entry.index] = supply.rebuilt[d.entry.index]
            for seg in d.segments(meta):
                staged.owners[(d.entry.index, seg.piece)] = supply.tiers.get((d.entry.index, seg.piece), "shift")
    # A rebuilt file's pieces were each proven from the very bytes written into it (shift.py): the
    # in-place ones are checked here, before and after writing, as the heal writer checks a snapshot's.
    checked = sorted({p for d in in_place for p in d.drift.pieces} | {s.piece for d in in_place
                                                                       for s in d.segments(meta)})
    try:
        failing = writer.bad_pieces(meta, save_path, checked, overrides=staged.ranges, paths=staged.files)
        if failing:
            raise writer.HealError(meta.name, f"the ladder's bytes do not make pieces {failing[:10]}; nothing written")
        kept = writer.quarantine(meta, whole, writer.quarantine_folder(quarantine_root, meta.id))
    except BaseException:
        staged.discard()
        supply.close()
        raise
    try:
        result = writer.write_staged(meta, whole, staged)
    finally:
        supply.close()
    failing = writer.bad_pieces(meta, save_path, checked)
    if failing:
        raise writer.HealError(meta.name, f"pieces {failing[:10]} still fail the torrent's hashes after writing")
    return kept, result
