"""RQ job functions of the leads part: they take ids, re-read state, and are safe to run twice."""

from __future__ import annotations

import uuid

from libs import runtime
from libs.suppression import stored_hash_key
from services.campaign.leads.contact import mx_resolver
from services.campaign.leads.importer import ImportRun
from services.campaign.settings import CampaignSettings


def run_import(import_id: str) -> str:
    """Import the uploaded CSV file of ``import_id`` into leads.

    Delivery: at least once is safe. A finished import returns at once; a run that died
    resumes after the last committed chunk; a concurrent second run returns ``busy``.
    """
    process = runtime.current()
    settings = process.settings(CampaignSettings)
    engine = process.engine(settings.database_url)
    runner = ImportRun(
        engine,
        data_dir=settings.data_dir,
        hash_key=stored_hash_key(engine, settings),
        chunk_rows=settings.import_chunk_rows,
        max_rows=settings.import_max_rows,
        resolver=lambda: mx_resolver(settings.dns_nameservers, settings.dns_timeout),
    )
    return runner.run(uuid.UUID(import_id))
