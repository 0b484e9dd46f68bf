"""Training samples: [SEG] order and masks, the phrase cap, refusal of a triplet whose [SEG]s and masks disagree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotator import masks
from annotator.train.data import GcgDataset, Record, SampleError, cap_phrases, collate, load_records, plain


def test_phrase_cap_keeps_the_words_of_the_rest() -> None:
    answer = "<p> a man </p> [SEG] holds <p> a cup </p> [SEG] near <p> a dog </p> [SEG] ."
    assert cap_phrases(answer, 2) == "<p> a man </p> [SEG] holds <p> a cup </p> [SEG] near a dog ."
    assert plain(answer) == "a man holds a cup near a dog ."


def test_a_triplet_whose_seg_count_differs_from_its_masks_is_refused_by_name(dataset_run: Path) -> None:
    record = load_records(str(dataset_run))[0]
    broken = Record(record.video, {**record.qa, "answer": record.qa["answer"] + " <p> extra </p> [SEG]"},
                    record.objects)
    dataset = GcgDataset(str(dataset_run), None, None, records=[broken])
    name = f"{record.qa['video_id']}/{record.qa['qa_id']}"
    with pytest.raises(SampleError, match=f"{name}: the answer has {len(record.objects) + 1} \\[SEG\\] tokens but "
                                          f"{len(record.objects)} masks"):
        dataset[0]


def test_samples_carry_masks_in_seg_order_on_the_sampled_frames(dataset_run: Path, tiny_models) -> None:
    from transformers import AutoProcessor, Sam2Processor

    processor = AutoProcessor.from_pretrained(tiny_models["qwen2_vl"])
    processor.tokenizer.add_special_tokens({"additional_special_tokens": ["[SEG]", "<p>", "</p>"]})
    dataset = GcgDataset(str(dataset_run), processor, Sam2Processor.from_pretrained(tiny_models["sam2_video"]),
                         num_frames=3, max_phrases=2)
    sample = dataset[1]
    record = dataset.records[1]
    positions = dataset.positions(1)
    assert len(positions) == 4 and positions == sorted(positions), "3 frames rounded up to pairs"
    assert positions == GcgDataset(str(dataset_run), processor, None, num_frames=3, seed=0).positions(1), "seeded"
    assert sample["masks"].shape == (2, 4, record.video["height"], record.video["width"])
    for o, obj in enumerate(record.objects[:2]):
        by_frame = dict(zip(obj["frame_indices"], obj["mask_rles"], strict=True))
        for t, p in enumerate(positions):
            expected = masks.decode(by_frame[record.video["frame_indices"][p]], record.video["height"],
                                    record.video["width"])
            assert np.array_equal(sample["masks"][o, t].numpy(), expected)
    labels = sample["labels"][sample["labels"] != -100].tolist()
    tokens = processor.tokenizer.convert_ids_to_tokens(labels)
    assert tokens.count("[SEG]") == 2 and tokens[0] == "<p>", "only the answer is a target"
    batch = collate([dataset[0], sample], processor.tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert len(batch["masks"]) == 2 and batch["names"][1] == f"{record.qa['video_id']}/{record.qa['qa_id']}"


def test_streamed_records_equal_the_whole_export(dataset_run: Path) -> None:
    from annotator.train.stream import StreamingRecords

    streamed = StreamingRecords(str(dataset_run))
    whole = {(r.qa["video_id"], r.qa["qa_id"]): r for r in load_records(str(dataset_run))}
    assert len(streamed) == len(whole) == 4
    for record in streamed:
        expected = whole[(record.qa["video_id"], record.qa["qa_id"])]
        assert record.qa["answer"] == expected.qa["answer"]
        assert [o["object_id"] for o in record.objects] == expected.qa["object_ids"]
        assert [o["mask_rles"] for o in record.objects] == [o["mask_rles"] for o in expected.objects]
        assert record.video["frame_indices"] == expected.video["frame_indices"]
    assert [r.qa["qa_id"] for r in streamed[1:3]] == [streamed[1].qa["qa_id"], streamed[2].qa["qa_id"]]
    assert len(streamed.limit(2)) == 2
