"""Tiny datasets written in each source family's published layout, frames from the synthetic CC0 scene."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from annotator import masks
from tests.synthetic import H, W, render

NAMES = {1: "the cat on the left", 2: "a rocket", 3: "the astronaut face", 4: "a cup", 5: "the flag"}


def _frames(root: Path, name: str, count: int) -> tuple[list[str], dict[int, np.ndarray]]:
    video, truth, _ = render(max(count, 40))  # the scene's script needs 40 frames; the first `count` are kept
    video, truth = video[:count], {obj: m[:count] for obj, m in truth.items()}
    folder = root / "JPEGImages" / name
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{5 * t:05d}" for t in range(count)]
    for t, f in enumerate(names):
        cv2.imwrite(str(folder / f"{f}.jpg"), cv2.cvtColor(video[t], cv2.COLOR_RGB2BGR))
    return names, truth


def write_refytvos(root: Path, count: int = 12) -> tuple[Path, dict[tuple[str, int], list[np.ndarray]]]:
    """`meta_expressions/train/meta_expressions.json` + palette PNGs `Annotations/<video>/<frame>.png`."""
    names, truth = _frames(root, "vid1", count)
    (root / "Annotations" / "vid1").mkdir(parents=True)
    palette = [0, 0, 0] + [c for i in range(1, 256) for c in ((i * 53) % 256, (i * 97) % 256, (i * 191) % 256)]
    for t, f in enumerate(names):
        label = np.zeros((H, W), np.uint8)
        for obj, m in truth.items():
            label[m[t]] = obj
        image = Image.fromarray(label, mode="P")
        image.putpalette(palette)
        image.save(root / "Annotations" / "vid1" / f"{f}.png")
    expressions = {str(i): {"exp": NAMES[obj], "obj_id": str(obj)} for i, obj in enumerate(sorted(truth))}
    expressions[str(len(truth))] = {"exp": "the round thing", "obj_id": "4"}  # a second expression for one object
    meta = root / "meta_expressions" / "train" / "meta_expressions.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"videos": {"vid1": {"expressions": expressions, "frames": names}}}))
    return meta, {("vid1", obj): [m[t] for t in range(count)] for obj, m in truth.items()}


def write_mevis(root: Path, count: int = 12) -> tuple[Path, dict[tuple[str, int], list[np.ndarray]]]:
    """`train/meta_expressions.json` + `train/mask_dict.json` (one COCO RLE or null per frame per annotation)."""
    split = root / "train"
    names, truth = _frames(split, "clip_1", count)
    mask_dict, expressions = {}, {}
    for obj, m in truth.items():
        mask_dict[str(100 + obj)] = [{"size": [H, W], "counts": masks.encode(m[t])} if m[t].any() else None
                                     for t in range(count)]
    expressions["0"] = {"exp": "the cat and the rocket", "obj_id": [1, 2], "anno_id": ["101", "102"]}
    for i, obj in enumerate(sorted(truth)[2:], start=1):
        expressions[str(i)] = {"exp": NAMES[obj], "obj_id": [obj], "anno_id": [str(100 + obj)]}
    (split / "mask_dict.json").write_text(json.dumps(mask_dict))
    meta = split / "meta_expressions.json"
    meta.write_text(json.dumps({"videos": {"clip_1": {"expressions": expressions, "frames": names}}}))
    return meta, {("clip_1", obj): [m[t] for t in range(count)] for obj, m in truth.items()}


def write_coco_images(root: Path) -> tuple[Path, dict[tuple[str, int], np.ndarray]]:
    """`annotations.json` (COCO instances: RLE and polygon segmentations) + `images/<name>.jpg`."""
    video, truth, _ = render(40)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations, expected = [], [], {}
    for image_id, t in enumerate((0, 20), start=1):
        name = f"scene_{t:02d}.jpg"
        cv2.imwrite(str(root / "images" / name), cv2.cvtColor(video[t], cv2.COLOR_RGB2BGR))
        images.append({"id": image_id, "file_name": name, "width": W, "height": H})
        for obj, m in truth.items():
            if m[t].any():
                ann_id = 100 * image_id + obj
                annotations.append({"id": ann_id, "image_id": image_id, "category_id": obj, "iscrowd": 0,
                                    "segmentation": {"size": [H, W], "counts": masks.encode(m[t])}})
                expected[(Path(name).stem, ann_id)] = m[t]
        poly = [[10.0, 150.0, 60.0, 150.0, 60.0, 180.0, 10.0, 180.0]]
        annotations.append({"id": 100 * image_id + 9, "image_id": image_id, "category_id": 9, "iscrowd": 0,
                            "segmentation": poly})
        expected[(Path(name).stem, 100 * image_id + 9)] = masks.decode(masks.from_coco(poly, H, W), H, W)
    categories = [{"id": i, "name": n} for i, n in NAMES.items()] + [{"id": 9, "name": "a sign"}]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, expected


def write_hcstvg(root: Path, frames: int = 20) -> tuple[Path, list[list[float]]]:
    """`annotations.json` (HC-STVG v2: st_frame, img_num, img_size, bbox [x, y, w, h] per frame, English) and
    `video/<name>.mp4`: object 1 of the synthetic scene as the person, from frame 2 on."""
    from tests.synthetic import true_boxes, write_video

    video, truth, _ = render(max(frames, 40))
    (root / "video").mkdir(parents=True, exist_ok=True)
    write_video(root / "video" / "walk.mp4", video[:frames])
    boxes = []
    for t in range(2, frames):
        x0, y0, x1, y1 = true_boxes(truth, t)[1]
        boxes.append([x0, y0, x1 - x0, y1 - y0])
    path = root / "annotations.json"
    path.write_text(json.dumps({"walk.mp4": {"st_frame": 2, "img_num": frames, "img_size": [H, W], "bbox": boxes,
                                             "English": "The cat walks to the right and stops."}}))
    return path, boxes


def write_vidstg(root: Path, frames: int = 10) -> Path:
    """`annotations.json` (VidOR-style: subject/objects, trajectories of boxes per frame, captions) and
    `video/<vid>.mp4`: objects 1 and 2 of the synthetic scene as an adult and a rocket."""
    from tests.synthetic import true_boxes, write_video

    video, truth, _ = render(max(frames, 40))
    (root / "video").mkdir(parents=True, exist_ok=True)
    write_video(root / "video" / "4001.mp4", video[:frames])
    trajectories = []
    for t in range(frames):
        boxes = true_boxes(truth, t)
        trajectories.append([{"tid": tid, "bbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), boxes[gt], strict=True))}
                             for tid, gt in ((0, 1), (1, 2)) if gt in boxes])
    entry = {"vid": "4001", "frame_count": frames, "fps": 10, "width": W, "height": H,
             "subject/objects": [{"tid": 0, "category": "adult"}, {"tid": 1, "category": "toy_rocket"}],
             "trajectories": trajectories,
             "captions": [{"target_id": 0, "description": "an adult in grey", "begin_fid": 0, "end_fid": frames}]}
    path = root / "annotations.json"
    path.write_text(json.dumps([entry]))
    return path


def write_anet_entities(root: Path) -> Path:
    """`annotations.json` (ActivityNet-Entities: a segment with a grounded caption, one box per noun phrase on
    one of its 10 sampled frames) and `videos/<vid>.mp4` (40 frames at 10 fps)."""
    from tests.synthetic import true_boxes, write_video

    video, truth, _ = render(40)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    write_video(root / "videos" / "v_demo.mp4", video, fps=10.0)
    picks = [int((0.2 + 0.4 * k) * 10) for k in range(10)]  # the segment's 10 frames over [0 s, 4 s]
    segment = {"caption": "A cat sits while a rocket flies .", "timestamps": [0.0, 4.0],
               "tokens": ["A", "cat", "sits", "while", "a", "rocket", "flies", "."],
               "frame_ind": [0, 3], "process_idx": [[1], [4, 5]], "process_clss": [["cat"], ["rocket"]],
               "process_bnd_box": [true_boxes(truth, picks[0])[1], true_boxes(truth, picks[3])[2]], "crowds": [0, 0]}
    path = root / "annotations.json"
    path.write_text(json.dumps({"annotations": {"v_demo": {"duration": 4.0, "segments": {"0": segment}}}}))
    return path


def write_burst(root: Path, count: int = 12) -> tuple[Path, Path, dict[tuple[str, int], list[np.ndarray]]]:
    """BURST's layout: `annotations.json` (sequences with per-frame {track id: {"rle"}} and track categories) and
    `frames/<dataset>/<seq_name>/<frame>.jpg`."""
    video, truth, _ = render(40)
    folder = root / "frames" / "YFCC100M" / "seq_7"
    folder.mkdir(parents=True, exist_ok=True)
    paths_, segmentations = [], []
    for t in range(count):
        name = f"frame{5 * t:04d}.jpg"
        cv2.imwrite(str(folder / name), cv2.cvtColor(video[t], cv2.COLOR_RGB2BGR))
        paths_.append(name)
        segmentations.append({str(40 + obj): {"rle": masks.encode(m[t]), "is_gt": True}
                              for obj, m in truth.items() if m[t].any()})
    seq = {"dataset": "YFCC100M", "seq_name": "seq_7", "width": W, "height": H, "fps": 30,
           "annotated_image_paths": paths_, "segmentations": segmentations,
           "track_category_ids": {str(40 + obj): obj for obj in truth}}
    path = root / "annotations.json"
    path.write_text(json.dumps({"category_names": {str(i): n for i, n in NAMES.items()}, "sequences": [seq]}))
    expected = {("YFCC100M_seq_7", 40 + obj): [m[t] if m[t].any() else None for t in range(count)]
                for obj, m in truth.items()}
    return path, root / "frames", expected
