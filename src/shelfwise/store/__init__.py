"""Storage: models, sessions, migrations, the event log, the catalog, job progress."""

from .catalog import AttributeSchema, AttributeSpec, Catalog, IngestReport, Listing
from .db import Database
from .events import EventLog, StoredEvent
from .jobs import JobTracker
from .listing_files import read_listings
from .models import Base

__all__ = [
    "AttributeSchema",
    "AttributeSpec",
    "Base",
    "Catalog",
    "Database",
    "EventLog",
    "IngestReport",
    "JobTracker",
    "Listing",
    "StoredEvent",
    "read_listings",
]
