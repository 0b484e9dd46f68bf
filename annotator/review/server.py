"""The review server: one static page and a small JSON API over a run directory's pending items.

Everything is looked up by item id (checked against the run's own items) and sampled-frame position; no path
from a client is ever opened. Bound to 127.0.0.1 no token is needed; bound anywhere else every request must
carry the token (`Authorization: Bearer`, the `token` query parameter once, then a cookie).
"""

from __future__ import annotations

import hmac
import threading
from importlib import resources
from typing import Any

import cv2
import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from annotator import frames, masks
from annotator.records import VideoItem
from annotator.review.apply import DecisionError, tagged_caption
from annotator.review.items import ReviewRun, UnknownItem
from annotator.review.store import FIELDS, ITEM_ACTIONS, Decision
from annotator.review.tracker import MaskFixer
from annotator.video import VideoError

COLORS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
          (70, 240, 240), (240, 50, 230)]
COOKIE = "annotator_token"


class DecisionIn(BaseModel):
    action: str
    reviewer: str = Field(default="reviewer", min_length=1, max_length=100)
    object: int | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field(default="", max_length=2000)


class FixIn(BaseModel):
    object: int
    frame: int  # sampled-frame position
    points: list[tuple[float, float, int]] = Field(min_length=1, max_length=64)


class LeaseIn(BaseModel):
    reviewer: str = Field(default="reviewer", min_length=1, max_length=100)


def _color(i: int) -> tuple[int, int, int]:
    return COLORS[i % len(COLORS)]


def create_app(run_dir: str, token: str | None = None, lease_s: float = 600.0) -> FastAPI:
    review = ReviewRun(run_dir)
    fixer = MaskFixer(review.manifest)
    drafts: dict[tuple[str, int], dict[str, Any]] = {}
    drafts_lock = threading.Lock()
    app = FastAPI(title="annotator review", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if token is None:
            return await call_next(request)
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip() \
            or request.query_params.get("token") or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"detail": "a valid token is required"}, status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    def item_or_error(video_id: str) -> str:
        try:
            return review.check_id(video_id)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        except UnknownItem:
            raise HTTPException(404, f"no item {video_id!r} in this run") from None

    def position(item: VideoItem, pos: int) -> int:
        assert item.info is not None
        if not 0 <= pos < len(item.info.frame_indices):
            raise HTTPException(404, f"{item.video_id} has no sampled frame {pos}")
        return pos

    def view(item: VideoItem) -> dict[str, Any]:
        assert item.info is not None
        objects = [{"object_id": o.object_id, "phrase": item.phrases[o.phrase].text,
                    "start": item.phrases[o.phrase].start, "end": item.phrases[o.phrase].end,
                    "color": "#{:02x}{:02x}{:02x}".format(*_color(i)),
                    "score": round(sum(o.masks.scores) / len(o.masks.scores), 4) if o.masks.scores else 0.0,
                    "provenance": o.provenance, "frames": len(o.masks.frames)}
                   for i, o in enumerate(item.objects)]
        return {"video_id": item.video_id, "caption": item.caption or "", "tagged_caption": tagged_caption(item),
                "width": item.info.width, "height": item.info.height,
                "frames": item.info.frame_indices, "objects": objects, "priority": item.review_priority,
                "dropped": [vars(d) for d in item.dropped_objects],
                "state": item.hold.reason if item.hold is not None else next(
                    (f"{d.action}ed by {d.reviewer}" for d in reversed(review.store.latest(item.video_id))
                     if d.field == "status"), "awaiting review"),
                "decisions": [{"id": d.id, "action": d.action, "object": d.object, "reviewer": d.reviewer,
                               "reason": d.reason} for d in review.store.history(item.video_id)]}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files("annotator.review").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/api/queue")
    def queue() -> dict[str, Any]:
        items = review.queue()
        return {"total": len(items), "decided": sum(q["decided"] for q in items), "items": items}

    @app.get("/api/items/{video_id}")
    def item(video_id: str) -> dict[str, Any]:
        return view(review.current(item_or_error(video_id)))

    @app.get("/api/items/{video_id}/frame/{pos}.jpg")
    def frame(video_id: str, pos: int) -> Response:
        it = review.base(item_or_error(video_id))
        pos = position(it, pos)
        assert it.info is not None
        try:
            data = frames.read_jpegs(review.run.root, it.video_id, [it.info.frame_indices[pos]])[0]
        except FileNotFoundError:  # frame store dropped: decode the source
            try:
                data = frames.encode_jpeg(frames.read(it, [pos], None)[0], 90)
            except (VideoError, OSError) as exc:
                raise HTTPException(502, f"cannot read frame {pos} of {it.video_id}: {exc}") from None
        return Response(data, media_type="image/jpeg")

    @app.get("/api/items/{video_id}/overlay/{pos}.png")
    def overlay(video_id: str, pos: int) -> Response:
        it = review.current(item_or_error(video_id))
        pos = position(it, pos)
        assert it.info is not None
        h, w = it.info.height, it.info.width
        rgba = np.zeros((h, w, 4), np.uint8)
        for i, obj in enumerate(it.objects):
            draft = drafts.get((it.video_id, obj.object_id))
            frames_, rles = (draft["frames"], draft["rles"]) if draft else (obj.masks.frames, obj.masks.rles)
            if pos in frames_:
                m = masks.decode(rles[frames_.index(pos)], h, w)
                rgba[m] = (*_color(i), 150)
        _, png = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
        return Response(png.tobytes(), media_type="image/png")

    @app.post("/api/items/{video_id}/lease")
    def lease(video_id: str, body: LeaseIn) -> dict[str, str]:
        holder = review.leases.lease(item_or_error(video_id), body.reviewer, lease_s)
        if holder != body.reviewer:
            raise HTTPException(409, f"{video_id} is being reviewed by {holder}")
        return {"holder": holder}

    @app.post("/api/items/{video_id}/fix")
    def fix(video_id: str, body: FixIn) -> dict[str, Any]:
        it = review.current(item_or_error(video_id))
        pos = position(it, body.frame)
        if body.object not in {o.object_id for o in it.objects}:
            raise HTTPException(404, f"{video_id} has no object {body.object}")
        if any(label not in (0, 1) for *_, label in body.points):
            raise HTTPException(400, "a point's label is 1 (positive) or 0 (negative)")
        draft = fixer.fix(it, review.run.root, body.object, pos, body.points)
        with drafts_lock:
            drafts[(it.video_id, body.object)] = draft
        return {"object": body.object, "frames": len(draft["frames"]),
                "area": [masks.area(r, it.info.height, it.info.width) for r in draft["rles"]] if it.info else []}

    @app.post("/api/items/{video_id}/decisions")
    def decide(video_id: str, body: DecisionIn) -> dict[str, Any]:
        vid = item_or_error(video_id)
        if body.action not in FIELDS or body.action == "policy":
            raise HTTPException(400, f"unknown action {body.action!r}")
        if body.action == "reject" and not body.reason.strip():
            raise HTTPException(400, "a rejection needs a reason")
        if (body.action in ITEM_ACTIONS) != (body.object is None):
            about = "the item (no object)" if body.action in ITEM_ACTIONS else "one object (give its id)"
            raise HTTPException(400, f"{body.action} is about {about}")
        payload = dict(body.payload)
        if body.action == "fix_mask":
            with drafts_lock:
                draft = drafts.get((vid, body.object or 0))
            if draft is None:
                raise HTTPException(409, "no mask fix to save: click points and track first")
            payload = draft
        decision = Decision(vid, body.action, body.reviewer, body.object, payload, body.reason)
        try:
            review.current(vid, decision)
        except DecisionError as exc:
            raise HTTPException(400, str(exc)) from None
        decision_id = review.store.append(decision)
        if body.action == "fix_mask":
            with drafts_lock:
                drafts.pop((vid, body.object or 0), None)
        return {"id": decision_id}

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"decisions": review.store.count()}

    return app

