from __future__ import annotations

from pathlib import Path

import pytest

from annotator import prompts


def test_shipped_templates_are_versioned_and_hashed() -> None:
    for name in ("caption", "qa", "phrases", "gcg_questions"):
        template = prompts.load(f"prompts/{name}.v1.md")
        assert (template.name, template.version) == (name, 1)
        assert template.cache_key() == {"name": name, "version": 1, "sha256": template.sha256}
        assert len(template.sha256) == 64 and template.text == template.text.strip()
    assert "{caption}" in prompts.load("prompts/phrases.v1.md").text


def test_text_change_changes_the_hash_and_bad_templates_are_named(tmp_path: Path) -> None:
    path = tmp_path / "caption.v3.md"
    path.write_text("describe the video\n")
    before = prompts.load(path)
    path.write_text("describe the video in detail\n")
    after = prompts.load(path)
    assert before.version == after.version == 3 and before.sha256 != after.sha256
    with pytest.raises(ValueError, match=r"caption\.md: prompt templates are versioned"):
        prompts.load(tmp_path / "caption.md")
    (tmp_path / "empty.v1.md").write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        prompts.load(tmp_path / "empty.v1.md")
    with pytest.raises(ValueError, match="cannot read"):
        prompts.load(tmp_path / "missing.v1.md")
    with pytest.raises(ValueError, match="markdown list"):
        prompts.load(path).items()


def test_config_time_check_reads_content_only_when_the_file_is_there(tmp_path: Path) -> None:
    prompts.check(tmp_path / "absent.v1.md")  # missing files are the stage's required_paths' job
    (tmp_path / "latin.v1.md").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        prompts.check(tmp_path / "latin.v1.md")
    prompts.check("prompts/phrases.v1.md", slot="{caption}")
    prompts.check("prompts/gcg_questions.v1.md", as_list=True)


def test_prompts_travel_inside_the_pickled_stages(tmp_path) -> None:
    """Remote workers never read prompts/ from their own disk: the driver loads the text into the stage."""
    import pickle

    from tests.helpers import demo_pipeline

    prompt = tmp_path / "caption.v1.md"
    prompt.write_text("describe the rabbit .")
    pipeline = demo_pipeline(f"stages.caption.params.prompt={prompt}")
    shipped = pickle.dumps([b.stage for b in pipeline.stages])
    prompt.unlink()
    stages = {s.name: s for s in pickle.loads(shipped)}
    assert stages["caption"].prompt_text == "describe the rabbit ."
    assert len(stages["assemble"].question_list) == 6
