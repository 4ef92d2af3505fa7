"""shelfwise: self-hosted, self-learning product intelligence (enrich, understand, search)."""

from .app import Shelfwise
from .config import RoleConfig, Settings, get_settings
from .errors import ShelfwiseError

__version__ = "0.1.0"

__all__ = ["Shelfwise", "Settings", "RoleConfig", "get_settings", "ShelfwiseError", "__version__"]
