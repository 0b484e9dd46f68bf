from __future__ import annotations

import copy

import numpy as np

from annotator import masks, prompts
from annotator.records import MaskTrack, Phrase, Track, VideoInfo, VideoItem
from annotator.stages.assemble import AssembleStage, grounded_answer
from annotator.stages.link import LinkStage


def item_with_tracks() -> tuple[VideoItem, np.ndarray]:
    caption = "two rabbits chase a butterfly past a tree"
    phrases = [Phrase("two rabbits", 0, 11, "two rabbits"), Phrase("a butterfly", 18, 29, "butterfly"),
               Phrase("a tree", 35, 41, "tree")]
    m = np.zeros((3, 3, 10, 12), dtype=bool)  # track, frame, h, w
    m[0, :, 0:3, 0:3] = True
    m[1, :, 5:9, 5:9] = True
    m[2, 1:, 2:4, 8:11] = True
    tracks = [
        Track(1, 0, 0, [0, 0, 3, 3], MaskTrack([0, 1, 2], masks.encode_batch(m[0]), [0.9, 0.8, 0.7])),
        Track(2, 0, 0, [5, 5, 9, 9], MaskTrack([1, 2], masks.encode_batch(m[1, 1:]), [0.6, 0.95])),
        Track(3, 1, 1, [8, 2, 11, 4], MaskTrack([1, 2], masks.encode_batch(m[2, 1:]), [0.5, 0.5])),
    ]
    info = VideoInfo(width=12, height=10, fps=2, num_frames=3, frame_indices=[0, 1, 2], keyframes=[0])
    return VideoItem("v", "/v.mp4", info=info, caption=caption, phrases=phrases, tracks=tracks), m


def test_link_unions_tracks_of_one_phrase_and_drops_undetected() -> None:
    item, m = item_with_tracks()
    (out,) = LinkStage().process([item])
    assert out.error is None
    rabbits, butterfly = out.objects
    assert (rabbits.object_id, rabbits.phrase, rabbits.track_ids) == (1, 0, [1, 2])
    assert rabbits.masks.frames == [0, 1, 2] and rabbits.masks.scores == [0.9, 0.8, 0.95]
    got = masks.decode_batch(rabbits.masks.rles, 10, 12)
    assert np.array_equal(got[0], m[0, 0]) and np.array_equal(got[2], m[0, 2] | m[1, 2])
    assert (butterfly.object_id, butterfly.track_ids, butterfly.masks.frames) == (2, [3], [1, 2])
    assert [(d.text, d.reason) for d in out.dropped_phrases] == [("a tree", "not detected on any keyframe")]


def test_assemble_one_seg_per_linked_object_in_caption_order() -> None:
    item, _ = item_with_tracks()
    stage = AssembleStage(questions=["Q?"])
    stage.setup()
    (out,) = stage.process(LinkStage().process([item]))
    (qa,) = out.qa
    assert qa.question == "Q?" and qa.qa_id == "v-0"
    assert qa.answer == "<p> two rabbits </p> [SEG] chase <p> a butterfly </p> [SEG] past a tree"
    assert qa.answer.count("[SEG]") == len(qa.object_ids) == 2 and qa.object_ids == [1, 2]


def test_no_grounded_object_gives_no_triplet_and_no_error() -> None:
    item, _ = item_with_tracks()
    item.tracks = []
    stage = AssembleStage()
    stage.setup()
    (out,) = stage.process(LinkStage().process([item]))
    assert out.error is None and out.qa == [] and len(out.dropped_phrases) == 3


def test_gcg_questions_come_from_the_versioned_set_seeded_per_video() -> None:
    gcg = prompts.load("prompts/gcg_questions.v1.md")
    assert (gcg.name, gcg.version) == ("gcg_questions", 1) and len(gcg.items()) == 6
    linked = []
    for i in range(40):
        item, _ = item_with_tracks()
        item.video_id = f"video{i}"
        linked += LinkStage().process([item])

    def questions(seed: int) -> list[str]:
        stage = AssembleStage(seed=seed)
        stage.setup()
        return [it.qa[0].question for it in stage.process(copy.deepcopy(linked))]

    first = questions(0)
    assert set(first) <= set(gcg.items()) and len(set(first)) >= 4, "spread over the question set"
    assert questions(0) == first, "same seed, same questions"
    assert questions(1) != first, "another seed picks differently"
    assert AssembleStage(seed=0).cache_inputs() == {"questions": gcg.cache_key()}


def test_the_vlms_own_question_wins_over_the_gcg_set() -> None:
    item, _ = item_with_tracks()
    item.question = "What are the rabbits after?"
    stage = AssembleStage()
    stage.setup()
    (out,) = stage.process(LinkStage().process([item]))
    assert out.qa[0].question == "What are the rabbits after?"


def test_grounded_answer_keeps_text_between_spans() -> None:
    assert grounded_answer("ab cd ef", [(6, 8), (0, 2)]) == "<p> ab </p> [SEG] cd <p> ef </p> [SEG]"
