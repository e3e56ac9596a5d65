"""The tenant's documents: list, read (at a cited span), upload (an ingest job), delete; the jobs' progress."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, UploadFile

from tether.config import resolve_path
from tether.contracts import SearchFilters
from tether.service._app import Caller, Svc
from tether.service._auth import Principal, ServiceError
from tether.service._data import Job
from tether.service._schemas import DocumentList, DocumentText

router = APIRouter(prefix="/v1", tags=["documents"])
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ ()-]{0,127}")
MAX_FILES = 20


def allowlist(svc: Svc, who: Principal) -> SearchFilters:
    """What the caller's tenant may read: its own documents and its allowlist of the shared corpus."""
    return SearchFilters(allow=svc.tether.settings.tenants[who.tenant].allowlist(who.tenant))


def safe_name(raw: str | None, allowed: list[str]) -> str:
    """The stored file name of an upload, or 400 naming the problem: a bare name (no folders, no '..', no hidden
    files, no control characters), of a type the ingest reads."""
    name = unicodedata.normalize("NFC", raw or "")
    if not name:
        raise ServiceError(400, "invalid_filename", "an uploaded file needs a name")
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise ServiceError(400, "invalid_filename", f"{name!r}: a bare file name, without folders")
    if not _NAME.fullmatch(name):
        raise ServiceError(
            400,
            "invalid_filename",
            f"{name!r}: letters, digits, spaces and . _ ( ) - only, starting with a letter/digit",
        )
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in allowed:
        raise ServiceError(
            415, "unsupported_type", f"{name!r}: '{suffix or '(none)'}' is not one of {', '.join(allowed)}"
        )
    return name


def _tenant_folder(svc: Svc, tenant: str) -> Path:
    s = svc.tether.settings
    folder = resolve_path(s.service.uploads_path, s.root) / tenant
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _can_write(svc: Svc, who: Principal) -> None:
    roles = svc.tether.settings.service.upload_roles
    if who.role not in roles:
        raise ServiceError(403, "forbidden", f"role {who.role!r} may not change documents (service.upload_roles)")


@router.get("/documents")
def list_documents(
    who: Caller,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentList:
    """The documents the tenant can be answered from (its uploads and its share of the shared corpus), by path."""
    return DocumentList(documents=svc.tether.store(create=True).documents(allowlist(svc, who), limit, offset))


@router.get("/documents/{doc_id}")
def read_document(doc_id: int, who: Caller, svc: Svc) -> DocumentText:
    """A document's stored text (a citation's ``start``/``end`` index into it)."""
    store = svc.tether.store(create=True)
    meta = store.document(doc_id) if store.visible(doc_id, allowlist(svc, who)) else None
    if meta is None:
        raise ServiceError(404, "not_found", f"no document {doc_id}")
    return DocumentText(document=meta, text=store.document_text(doc_id))


@router.post("/documents", status_code=202, openapi_extra={"x-max-files": MAX_FILES})
async def upload(files: list[UploadFile], who: Caller, svc: Svc) -> Job:
    """Upload files (multipart, field ``files``) owned by the tenant; they are ingested by a background job
    (``GET /v1/jobs/{id}`` for progress). Names are bare file names; each file at most service.max_upload_mb."""
    _can_write(svc, who)
    if not files:
        raise ServiceError(400, "no_files", "send one or more files in the multipart field 'files'")
    if len(files) > MAX_FILES:
        raise ServiceError(413, "too_many_files", f"{len(files)} files; at most {MAX_FILES} an upload")
    s = svc.tether.settings
    limit = s.service.max_upload_mb * 1024 * 1024
    names = [safe_name(f.filename, list(s.ingest.extensions)) for f in files]
    if len(set(names)) != len(names):
        raise ServiceError(400, "invalid_filename", "two files of one upload have the same name")
    folder = _tenant_folder(svc, who.tenant)
    stored: list[str] = []
    for f, name in zip(files, names, strict=True):
        data = await f.read(limit + 1)
        if len(data) > limit:
            raise ServiceError(413, "too_large", f"{name!r} is larger than {s.service.max_upload_mb} MB")
        target = folder / name
        tmp = folder / f".{name}.part"
        tmp.write_bytes(data)
        os.replace(tmp, target)  # a reader never sees half a file
        stored.append(str(target.resolve()))
    job = svc.data.new_job(who.tenant, who.user, stored)
    svc.jobs.submit(who.tenant, job.id)
    return job


@router.delete("/documents/{doc_id}", status_code=204)
def delete_document(doc_id: int, who: Caller, svc: Svc) -> None:
    """Delete one of the tenant's own documents (the shared corpus is the operator's: 403)."""
    _can_write(svc, who)
    store = svc.tether.store(create=True)
    meta = store.document(doc_id) if store.visible(doc_id, allowlist(svc, who)) else None
    if meta is None:
        raise ServiceError(404, "not_found", f"no document {doc_id}")
    if meta.tenant != who.tenant:
        raise ServiceError(403, "forbidden", "documents of the shared corpus are managed by the operator")
    store.delete_document(meta.path)
    path = Path(meta.path)
    if path.parent == _tenant_folder(svc, who.tenant).resolve():
        path.unlink(missing_ok=True)  # else the next job's ingest would find nothing to bring back anyway


@router.get("/jobs")
def list_jobs(who: Caller, svc: Svc) -> list[Job]:
    """The tenant's latest ingest jobs."""
    return svc.data.jobs(who.tenant)


@router.get("/jobs/{job_id}")
def job(job_id: str, who: Caller, svc: Svc) -> Job:
    """An ingest job: queued, running (with progress), done (with its summary) or failed (with the error)."""
    got = svc.data.job(who.tenant, job_id)
    if got is None:
        raise ServiceError(404, "not_found", f"no job {job_id!r}")
    return got
