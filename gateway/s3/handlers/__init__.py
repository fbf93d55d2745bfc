"""S3 handlers, one module per operation family; HANDLERS maps each routed operation to one."""
from __future__ import annotations

from gateway.s3.handlers import bucket, listing, object_get, object_put, object_delete, copy
from gateway.s3.handlers.context import RequestContext

HANDLERS = {
    **bucket.HANDLERS,
    **listing.HANDLERS,
    **object_get.HANDLERS,
    **object_put.HANDLERS,
    **object_delete.HANDLERS,
    **copy.HANDLERS,
}

__all__ = ["HANDLERS", "RequestContext"]
