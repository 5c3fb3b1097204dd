"""Seeding continuity: how long each torrent seeded intact, how often it was interrupted and how
fast it came back (seeding.py, from the catalog's events; library.py puts it in `status`), and the
companion torrents' parity with their originals (parity.py: both swarms, the retirement offer).
"""

from .parity import SEEDING, Parity, Swarm, observe, parity, report, stored_reports, swarm_from_qbt

__all__ = ["SEEDING", "Parity", "Swarm", "observe", "parity", "report", "stored_reports", "swarm_from_qbt"]
