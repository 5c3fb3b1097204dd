"""Several seedboxes, one catalog and one store (issue 20): the service's part (heartbeat, owner
lock, the fleet in `status`), taking over a dead host's torrents, and the manifests' shared remote.
The catalog's side is companion/catalog/fleet.py; the object-store backend companion/store/remote.py."""
