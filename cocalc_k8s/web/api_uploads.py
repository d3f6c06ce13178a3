"""Chunked, resumable uploads over HTTP (see services.uploads for the staging rules).

    POST   …/uploads               {"path", "size"} → 201 the upload (its id, offset 0)
    GET    …/uploads               this account's unfinished uploads in the project
    GET    …/uploads/{id}          the upload; HEAD gives the offset in `Upload-Offset`
    PUT    …/uploads/{id}          a chunk: `Content-Range: bytes a-b/size` or
                                   `Upload-Offset: a`; 200 the new state, 409 with
                                   `{"offset"}` when a is past the committed offset;
                                   with `Content-Digest: sha-256=:…:` kept whole or
                                   not at all (422 when the bytes differ)
    DELETE …/uploads/{id}          cancel; the staged bytes are deleted

Only the account that created an upload sees it; every call first passes the project's
access check. The last chunk moves the file into place and answers `"complete": true`.
"""

from __future__ import annotations

import base64
import binascii
import re

from aiohttp import web

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.core.http_range import parse_content_range
from cocalc_k8s.keys import ACTIVITY, DISK_QUOTA, ENGINE, FILES, HISTORY, PROJECTS
from cocalc_k8s.services.uploads import OffsetMismatch, UploadState
from cocalc_k8s.web.access import project_access
from cocalc_k8s.web.jsonio import json_response, read_json

CHUNK = 256 * 1024
SHA256_DIGEST = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([^:]*):")


def _answer(state: UploadState, status: int = 200) -> web.Response:
    response = json_response(state, status=status)
    response.headers["Upload-Offset"] = str(state["offset"])
    return response


async def create(request: web.Request) -> web.Response:
    access = await project_access(request)
    body = await read_json(request)
    project = await request.app[PROJECTS].get(access.principal, access.project_id)
    quota = request.app[DISK_QUOTA]
    await quota.room(access.project_id)  # 507 while over quota or the disk is short
    state = await request.app[FILES].uploads.create(
        access.project_id,
        access.principal.account_id,
        path=body.get("path"),
        size=body.get("size"),
        quota_bytes=int(project["quota"]["disk_mb"]) * 1024 * 1024,
        used=await quota.usage(access.project_id),
    )
    response = _answer(state, status=201)
    response.headers["Location"] = f"{request.path}/{state['upload_id']}"
    return response


async def pending(request: web.Request) -> web.Response:
    access = await project_access(request)
    uploads = request.app[FILES].uploads
    found = await uploads.pending(access.project_id, access.principal.account_id)
    return json_response({"uploads": found})


async def status(request: web.Request) -> web.Response:
    access = await project_access(request)
    uploads = request.app[FILES].uploads
    state = await uploads.status(
        access.project_id, access.principal.account_id, request.match_info["upload_id"]
    )
    return _answer(state)


async def put_chunk(request: web.Request) -> web.Response:
    access = await project_access(request)
    offset, length = _chunk_position(request)
    files, quota = request.app[FILES], request.app[DISK_QUOTA]
    await quota.volume_room()  # the bytes are staged on the data volume: keep its reserve
    try:
        state, completed = await files.uploads.write(
            access.project_id,
            access.principal.account_id,
            request.match_info["upload_id"],
            offset=offset,
            length=length,
            chunks=request.content.iter_chunked(CHUNK),
            sha256=_sha256(request),
        )
    except OffsetMismatch as exc:
        response = json_response({"error": exc.message, "offset": exc.expected}, status=409)
        response.headers["Upload-Offset"] = str(exc.expected)
        return response
    request.app[ACTIVITY].touch(access.project_id)
    if completed:
        quota.wrote(access.project_id, state["size"])
        await files.events.record(
            request.app[ENGINE],
            "file.uploaded",
            account_id=access.principal.account_id,
            project_id=access.project_id,
            path=state["path"],
        )
        await request.app[HISTORY].record_quietly(
            access.project_id, state["path"], account_id=access.principal.account_id, kind="upload"
        )
    return _answer(state)


async def cancel(request: web.Request) -> web.Response:
    access = await project_access(request)
    await request.app[FILES].uploads.abort(
        access.project_id, access.principal.account_id, request.match_info["upload_id"]
    )
    return web.Response(status=204)


def _chunk_position(request: web.Request) -> tuple[int, int | None]:
    """(offset, length or None) of a chunk, from Content-Range or Upload-Offset."""
    length = request.content_length
    if "Content-Range" in request.headers:
        try:
            first, last, _total = parse_content_range(request.headers["Content-Range"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if length is not None and length != last - first + 1:
            raise BadRequest("Content-Range and Content-Length disagree")
        return first, last - first + 1
    raw = request.headers.get("Upload-Offset", "")
    if not raw.isdigit():
        raise BadRequest("a chunk needs a Content-Range or an Upload-Offset header")
    return int(raw), length


def _sha256(request: web.Request) -> bytes | None:
    """The chunk's SHA-256 from `Content-Digest: sha-256=:<base64>:` (RFC 9530), if sent;
    other algorithms are ignored."""
    header = request.headers.get("Content-Digest")
    if header is None:
        return None
    match = SHA256_DIGEST.search(header)
    if match is None:
        return None
    try:
        digest = base64.b64decode(match.group(1), validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != 32:
        raise BadRequest("Content-Digest: sha-256 must be 32 bytes in base64")
    return digest


def routes(base: str) -> list[web.AbstractRouteDef]:
    return [
        web.post(base + "/uploads", create),
        web.get(base + "/uploads", pending),
        web.get(base + "/uploads/{upload_id}", status),
        web.put(base + "/uploads/{upload_id}", put_chunk),
        web.patch(base + "/uploads/{upload_id}", put_chunk),
        web.delete(base + "/uploads/{upload_id}", cancel),
    ]
