"""The reproduction's report: knowledge retention scored again from the stored answers by both QA rules, and the
judge transcripts cut short counted."""

from speechgpt_hf.evaluation.eval_data import load_spoken_questions
from speechgpt_hf.reproduction.report import write_reproduction_report


def test_retention_is_rescored_from_the_stored_answers_and_cut_transcripts_are_counted(tmp_path):
    first, second = load_spoken_questions(limit=2)
    right, wrong = first.answers[0], second.answers[0]
    summary = {
        "settings": {
            "unit_encoder": "mfcc",
            "num_units": 8,
            "num_train": 2,
            "num_test": 1,
            "base_model": "base",
            "prompt_format": "chat_template",
        },
        "base_lm": {"base_model": "base"},
        "evaluation": {"test": {"tts": {"metrics": {"judge_wer": 0.5, "judge_cut_items": 2}}}},
        "knowledge": {
            "questions": [first.id, second.id],
            # an accuracy recorded by an earlier scorer is not what the report shows: it scores the answers again
            "accuracy": {"bare base": 1.0, "after cross_modal": 1.0},
            "answers": {
                "bare base": [f"It is {right}.", f"{wrong}."],
                "after cross_modal": [f"Not sure. It is {right}.", f"{wrong}, surely."],
            },
        },
    }
    report = write_reproduction_report(tmp_path, summary).read_text()
    assert "| bare base | 100.0% | 100.0% | 100.0% |" in report
    assert "| after cross_modal | 50.0% | 50.0% | 100.0% |" in report  # a guess first: right only anywhere
    assert "test tts, the system's speech: 2" in report
