"""S3 handlers, one module per operation family; HANDLERS maps each routed operation to one."""
from __future__ import annotations

from gateway.s3.handlers import (bucket, copy, listing, multipart, object_delete, object_get,
                                 object_put)
from gateway.s3.handlers.context import RequestContext

HANDLERS = {
    **bucket.HANDLERS,
    **listing.HANDLERS,
    **object_get.HANDLERS,
    **object_put.HANDLERS,
    **object_delete.HANDLERS,
    **copy.HANDLERS,
    **multipart.HANDLERS,
}

__all__ = ["HANDLERS", "RequestContext"]
