"""`Services`: what one server (or one CLI or evaluation run) holds for its modes, made once and handed to
every `Mode.run`: the settings, the engine pool, the store, the shop, the health knowledge and the one
set of embedders they share. Nothing here is global; closing it closes what it opened.

    services = Services.open(settings)          # blocking: opens the store
    async for delta in mode.run(request, services): ...
    await services.aclose()
"""

from __future__ import annotations

from dataclasses import dataclass

from ember.config import Settings
from ember.engines.embeddings import Embedders
from ember.engines.pool import EnginePool
from ember.medical.service import Knowledge
from ember.shopping.service import Shop
from ember.store.sql import SqlStore


@dataclass
class Services:
    settings: Settings
    engines: EnginePool
    store: SqlStore
    shop: Shop
    knowledge: Knowledge
    embedders: Embedders

    @classmethod
    def open(cls, settings: Settings, store: SqlStore | None = None) -> Services:
        """Services over `store` (a new one on `settings.db_url` if None); engines start on first use."""
        store = store or SqlStore(settings.db_url)
        embedders = Embedders(settings.cache_dir)
        knowledge = Knowledge(embedders, build=settings.build_health_index)
        engines = EnginePool(settings, embedders)  # embedding roles run on the same embedders
        return cls(settings, engines, store, Shop(store, embedders), knowledge, embedders)

    async def aclose(self) -> None:
        """Stop the engines, close the knowledge index and the store."""
        await self.engines.close()
        self.knowledge.close()
        self.store.close()
