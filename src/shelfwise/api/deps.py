"""Dependencies shared by the routers: the app object and API-key roles (reader < writer < expert < admin)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

from ..app import Shelfwise

__all__ = ["ROLE_ORDER", "AppDep", "Expert", "Reader", "Writer", "require"]

ROLE_ORDER = {"reader": 0, "writer": 1, "expert": 2, "admin": 3}


def get_app(request: Request) -> Shelfwise:
    return request.app.state.sw


AppDep = Annotated[Shelfwise, Depends(get_app)]
# Declares the X-API-Key scheme in OpenAPI (the "Authorize" button at /docs); the check itself is ``require``.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="an API key from [[api_keys]] in shelfwise.toml; its role decides access")


def require(minimum: str) -> Callable[..., str]:
    """A dependency that admits callers whose key grants at least ``minimum``. With no keys configured the
    API is open (a laptop default) and every caller counts as admin."""

    def check(sw: AppDep, x_api_key: Annotated[str | None, Depends(api_key_header)] = None) -> str:
        keys = sw.settings.api_keys
        if not keys:
            return "admin"
        for key in keys:
            if x_api_key is not None and hmac.compare_digest(x_api_key, key.key.get_secret_value()):
                if ROLE_ORDER[key.role] >= ROLE_ORDER[minimum]:
                    return key.role
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    f"this key has role {key.role!r}; {minimum!r} or higher is needed")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown API key: send it in X-API-Key",
                            headers={"WWW-Authenticate": "X-API-Key"})

    return check


Reader = Annotated[str, Depends(require("reader"))]
Writer = Annotated[str, Depends(require("writer"))]
Expert = Annotated[str, Depends(require("expert"))]
