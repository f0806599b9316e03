"""Skipped items are counted by reason and named; a summary shows the first few names of a reason, never all."""

from collections import Counter

from speechgpt_hf.data.skipped import SkippedItems, audio_name


def test_a_long_list_is_cut_on_screen_but_kept_whole():
    skipped = SkippedItems()
    for index in range(25):
        skipped.add("corrupt audio", f"clip{index:02d}.wav")
    skipped.add("missing transcript", "quiet.wav")
    lines = skipped.lines()
    assert lines[:2] == ["  corrupt audio (25):", "    clip00.wav"] and "    clip09.wav" in lines
    assert "    clip10.wav" not in lines and "    … and 15 more." in lines
    assert lines[-2:] == ["  missing transcript (1):", "    quiet.wav"]
    assert len(skipped.names["corrupt audio"]) == 25
    assert skipped == Counter({"corrupt audio": 25, "missing transcript": 1})


def test_merging_keeps_names_and_counts_recorded_without_them():
    total = SkippedItems()
    total.update(SkippedItems({"corrupt audio": 2}))  # a record of an older build: counts only
    total.update(SkippedItems({"corrupt audio": 1}, {"corrupt audio": ["bad.wav"]}))
    total.update(SkippedItems({"TTS failed": 1}, {"TTS failed": ["q7"]}), prefix="questions: ")
    assert dict(total) == {"corrupt audio": 3, "questions: TTS failed": 1}
    assert total.names == {"corrupt audio": ["bad.wav"], "questions: TTS failed": ["q7"]}
    assert total.lines()[:3] == ["  corrupt audio (3):", "    bad.wav", "    … and 2 more."]


def test_audio_values_are_named_by_their_file():
    assert audio_name("audio/a.wav") == "audio/a.wav"
    assert audio_name({"bytes": b"RIFF", "path": "a.wav"}) == "a.wav"
    assert audio_name({"array": [0.0], "sampling_rate": 16000}) is None
