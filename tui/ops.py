"""Control-socket ops the TUI reads, installed into the service as a feature (`register(service)`).

pieces {"id": ID} -> {"id": full id, "pieces": one char per piece: o ok, d damaged, h healing,
u unverified}: the last full verification, overlaid with the latest drift response.
"""

from .catalog_view import CatalogView


def register(service) -> None:
    view = CatalogView(service.home.catalog_db)

    def pieces(message: dict) -> dict:
        torrent_id = service.catalog.resolve_id(str(message.get("id", "")))
        row = service.catalog.get_torrent(torrent_id)
        return {"id": torrent_id, "pieces": view.pieces(torrent_id, row["protection"] if row else "")}

    service.register_op("pieces", pieces)
