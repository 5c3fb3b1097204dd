"""What every command gets: the state home, settings, and lazily opened resources."""

import json
import logging
import sys
from functools import cached_property

from ..catalog import Catalog
from ..config import Settings, load_settings
from ..home import Home, open_home
from ..manifests import ManifestRepo


class Context:
    def __init__(self, home_path=None, settings: Settings | None = None):
        self.home: Home = open_home(home_path)
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        return self._settings or load_settings(self.home.config)

    @cached_property
    def catalog(self) -> Catalog:
        self.home.ensure()
        return Catalog(self.home.catalog_db)

    @cached_property
    def manifests(self) -> ManifestRepo:
        self.home.ensure()
        return ManifestRepo(self.home.manifests)

    def close(self) -> None:
        if "catalog" in self.__dict__:
            self.catalog.close()


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


log = logging.getLogger("seedward")
