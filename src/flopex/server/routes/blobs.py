"""Content-addressed blobs: ``HEAD`` to deduplicate, ``PUT`` to upload, ``GET`` to download."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from flopex.protocol import BlobStored
from flopex.server.deps import Caller, Ctx
from flopex.service import blobs

router = APIRouter(prefix="/v1", tags=["blobs"])


@router.head("/blobs/{sha256}")
def head(sha256: str, ctx: Ctx, caller: Caller) -> Response:
    """200 with the size if the caller may read the blob, else 404 (also for others' blobs)."""
    size = blobs.exists_for(ctx, caller, sha256)
    return Response(status_code=200, headers={"x-blob-size": str(size)})


@router.put("/blobs/{sha256}", response_model=BlobStored, status_code=201)
async def put(sha256: str, request: Request, ctx: Ctx, caller: Caller) -> BlobStored:
    """Upload a blob; the server checks its SHA-256."""
    data = await request.body()
    size = await run_in_threadpool(blobs.put, ctx, caller, sha256, data)
    return BlobStored(sha256=sha256, size_bytes=size)


@router.get("/blobs/{sha256}")
def get(sha256: str, ctx: Ctx, caller: Caller) -> FileResponse:
    """Download a blob the caller may read."""
    path = blobs.open_for(ctx, caller, sha256)
    return FileResponse(path, media_type="application/octet-stream")
