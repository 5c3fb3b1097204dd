"""The protection ladder: ways to get a torrent's original bytes back, cheapest first (sibling,
zones, shift-aware heal, parity, full snapshot, swarm), each proven by the torrent's own piece
hashes before anything is written; the budget that bounds them and the coverage they give."""
