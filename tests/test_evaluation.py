"""The evaluation harness: every task runs end to end; a perfect stand-in scores perfectly, a broken one badly."""

import hashlib
import json

import numpy as np
import pytest
import torch
from datasets import Dataset

from speechgpt_hf.evaluation.eval_data import load_speech_items, load_spoken_questions
from speechgpt_hf.evaluation.harness import EvaluationConfig, evaluate_speechgpt
from speechgpt_hf.evaluation.judges import Heard
from speechgpt_hf.evaluation.scoring import error_rates, qa_accuracy
from speechgpt_hf.evaluation.tasks import Judges
from speechgpt_hf.inference.chat import SpeechGPTReply
from speechgpt_hf.inference.speech_streamer import StreamEvent
from speechgpt_hf.models.speechgpt.prompt_format import INPUT_MARKER, SpeechGPTResponse

SENTENCES = ["the cat sat on the mat", "open the window please", "rain falls in the spring"]


def speak(text: str, speaker: str | None = None) -> tuple[np.ndarray, int]:
    """A deterministic stand-in voice: a tone whose pitch and length depend on the text."""
    seed = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)
    t = np.arange(int(16000 * (0.4 + 0.02 * len(text)))) / 16000
    return (0.3 * np.sin(2 * np.pi * (150 + seed % 300) * t)).astype(np.float32), 16000


def _key(waveform: np.ndarray) -> str:
    return hashlib.sha1(np.round(np.asarray(waveform, dtype=np.float32), 4).tobytes()).hexdigest()


class OracleJudge:
    """Hears exactly the text of audio made by `speak` (or registered), and nothing in anything else."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def register(self, text: str) -> np.ndarray:
        waveform = speak(text)[0]
        self.known[_key(waveform)] = text
        return waveform

    def transcribe(self, waveforms):
        return [self.known.get(_key(w), "") for w in waveforms]


class ConstantMOS:
    def score(self, waveforms):
        return [3.0 for _ in waveforms]


class StandIn:
    """A system that answers every request from a lookup table: perfectly, or (broken) with noise and wrong text."""

    def __init__(self, judge: OracleJudge, questions, broken: bool = False) -> None:
        self.judge, self.broken = judge, broken
        self.by_audio, self.by_text = {}, {question.question: question for question in questions}
        for sentence in SENTENCES:
            self.by_audio[_key(judge.register(sentence))] = ("asr", sentence)
        for question in questions:
            self.by_audio[_key(judge.register(question.question))] = ("qa", question)
            judge.register(question.answers[0])
        self.vocoder = self
        self.unit_tokenizer = self
        self.speaker_id = None
        self.config = type("Config", (), {"sampling_rate": 16000})()
        self._codes: list[np.ndarray] = []

    # unit tokenizer and vocoder of the stand-in: a unit is an index into the audio it has seen
    def encode(self, audio, sampling_rate=None):
        self._codes.append(np.asarray(audio))
        return type("Units", (), {"units": [len(self._codes) - 1]})()

    def synthesize(self, units, speaker_id=None):
        audio = np.random.default_rng(0).normal(0, 0.3, 8000) if self.broken else self._codes[units[0]]
        return torch.from_numpy(np.asarray(audio, dtype=np.float32))

    def reset(self) -> None:
        pass

    def _speech(self, text: str) -> np.ndarray:
        return np.random.default_rng(1).normal(0, 0.3, 8000).astype(np.float32) if self.broken else speak(text)[0]

    def respond(self, text=None, audio=None, sampling_rate=None, output_modality=None, **kwargs):
        wrong = "something else entirely"
        if audio is not None:
            kind, target = self.by_audio[_key(audio)]
            if kind == "asr":
                assert text.endswith(INPUT_MARKER)
                return SpeechGPTReply(SpeechGPTResponse(text=wrong if self.broken else target))
            answer = wrong if self.broken else target.answers[0]
            waveform = self._speech(answer) if output_modality == "speech" else None
            return SpeechGPTReply(SpeechGPTResponse(transcript=target.question, text=answer, units=[1]), waveform)
        if output_modality == "text":  # a written question: the same answer, in text only
            question = self.by_text[text]
            return SpeechGPTReply(SpeechGPTResponse(text=wrong if self.broken else question.answers[0]))
        sentence = text.split(INPUT_MARKER, 1)[1].strip()
        return SpeechGPTReply(SpeechGPTResponse(units=[1, 2]), self._speech(sentence))

    def stream(self, **kwargs):
        reply = self.respond(**kwargs)
        yield StreamEvent(text=reply.response.text)
        yield StreamEvent(audio=reply.waveform)
        yield reply


def _dataset() -> Dataset:
    rows = [
        {"audio": {"array": speak(s)[0], "sampling_rate": 16000}, "text": s, "id": f"u{i}"}
        for i, s in enumerate(SENTENCES)
    ]
    rows.append({"audio": {"array": speak("no words")[0], "sampling_rate": 16000}, "text": "", "id": "blank"})
    return Dataset.from_list(rows)


def _run(system, judge, tmp_path, **overrides):
    settings = dict(dataset=_dataset(), qa_tts=speak, max_questions=6, latency_items=2, progress=False)
    config = EvaluationConfig(output_dir=str(tmp_path), **{**settings, **overrides})
    return evaluate_speechgpt(system, config, judges=Judges(judge, ConstantMOS()))


def test_perfect_stand_in_scores_perfectly(tmp_path):
    judge = OracleJudge()
    report = _run(StandIn(judge, load_spoken_questions(limit=6)), judge, tmp_path)
    tasks = report.results["tasks"]
    assert tasks["asr"]["metrics"]["wer"] == 0.0 and tasks["asr"]["metrics"]["cer"] == 0.0
    assert tasks["tts"]["metrics"]["judge_wer"] == 0.0 == tasks["tts"]["metrics"]["reference_judge_wer"]
    assert tasks["resynthesis"]["metrics"]["judge_wer"] == 0.0
    qa = tasks["spoken_qa"]["metrics"]
    assert qa["accuracy"] == 1.0 == qa["text_accuracy"] == qa["cross_modal_transfer"]
    assert qa["speech_text_consistency_wer"] == 0.0 and qa["question_judge_wer"] == 0.0
    assert sum(row["questions"] for row in tasks["spoken_qa"]["by_topic"].values()) == 6
    assert len(tasks["spoken_qa"]["by_topic"]) == 6  # six questions, six topics: the subset spans the set
    assert tasks["latency"]["metrics"]["first_audio_seconds"] >= 0.0
    assert report.results["skipped_inputs"] == {"dataset: missing transcript": 1}
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["tasks"]["asr"]["items"] == len(SENTENCES)
    report_md = (tmp_path / "report.md").read_text()
    assert "| asr | wer | 0.000 |" in report_md and "missing transcript: 1" in report_md
    assert "| spoken_qa | cross-modal transfer (spoken / text accuracy) | 1.000 |" in report_md
    assert "| spoken_qa | accuracy (spoken question, spoken answer; its first answer) | 1.000 | 0.000 |" in report_md
    assert "- tts, the system's speech: 0" in report_md  # every judged task counts the transcripts cut short
    assert "spoken_qa by topic:" in report_md
    assert {"error_rates.png", "wer_by_length.png", "spectrogram.png"} <= {p.name for p in tmp_path.iterdir()}
    assert sum(1 for _ in open(tmp_path / "items.jsonl")) >= 3 * len(SENTENCES) + 6


def test_broken_system_scores_badly(tmp_path):
    judge = OracleJudge()
    report = _run(StandIn(judge, load_spoken_questions(limit=6), broken=True), judge, tmp_path)
    tasks = report.results["tasks"]
    assert tasks["asr"]["metrics"]["wer"] >= 0.8
    assert tasks["tts"]["metrics"]["judge_wer"] == 1.0 and tasks["tts"]["metrics"]["reference_judge_wer"] == 0.0
    assert tasks["resynthesis"]["metrics"]["judge_wer"] == 1.0
    qa = tasks["spoken_qa"]["metrics"]
    assert qa["accuracy"] == 0.0 == qa["text_accuracy"] and "cross_modal_transfer" not in qa
    assert qa["speech_text_consistency_wer"] == 1.0 and qa["question_judge_wer"] == 0.0
    assert (
        "cross-modal transfer (spoken / text accuracy) | n/a (text accuracy is 0)"
        in (tmp_path / "report.md").read_text()
    )


def test_a_system_that_knows_the_answer_only_in_text_transfers_nothing(tmp_path):
    judge = OracleJudge()
    system = StandIn(judge, load_spoken_questions(limit=6))
    spoken_answer = system.respond
    system.respond = lambda text=None, audio=None, **kw: (
        spoken_answer(text=text, audio=audio, **kw)
        if audio is None
        else SpeechGPTReply(SpeechGPTResponse(text="no idea"), speak("no idea")[0])
    )
    report = _run(system, judge, tmp_path, tasks=["spoken_qa"])
    qa = report.results["tasks"]["spoken_qa"]["metrics"]
    assert (qa["accuracy"], qa["text_accuracy"], qa["cross_modal_transfer"]) == (0.0, 1.0, 0.0)


def test_questions_are_voiced_in_the_held_out_voice_unless_told_otherwise():
    from speechgpt_hf.evaluation.eval_data import QUESTION_VOICES, question_voices
    from speechgpt_hf.reproduction.settings import PRESETS

    assert set(QUESTION_VOICES) == set(PRESETS["quickstart"].held_out_voices)
    assert not set(QUESTION_VOICES) & (set(PRESETS["quickstart"].voices) | set(PRESETS["hour"].voices))
    assert EvaluationConfig().qa_tts == QUESTION_VOICES
    (name, engine, speaker), *_ = question_voices(speak)
    assert (name, speaker) == ("speak", None) and engine("hi")[1] == 16000
    with pytest.raises(ValueError, match="not 'piper:SPEAKER' or 'espeak:VOICE'"):
        question_voices(["espeak:en-gb", "festival:kal"])


def test_several_voices_take_the_questions_in_turn(monkeypatch):
    from speechgpt_hf.data import tts_engines
    from speechgpt_hf.evaluation.eval_data import voice_questions

    class FakeEspeak:
        name = "espeak-ng"

        def __init__(self, speakers):
            self.speakers = list(speakers)

        def __call__(self, text, speaker=None):
            return speak(f"{speaker} {text}")

    monkeypatch.setattr(tts_engines, "EspeakTTS", FakeEspeak)
    questions = load_spoken_questions(limit=3)
    items, skipped = voice_questions(questions, ["espeak:en-gb-scotland+m4", "espeak:en-us+f4"])
    assert [item.voice for item in items] == ["espeak:en-gb-scotland+m4", "espeak:en-us+f4", "espeak:en-gb-scotland+m4"]
    np.testing.assert_array_equal(items[1].audio, speak(f"en-us+f4 {questions[1].question}")[0])
    assert not skipped


def test_no_vocoder_skips_speech_tasks_with_a_reason(tmp_path):
    judge = OracleJudge()
    system = StandIn(judge, load_spoken_questions(limit=6))
    system.vocoder = None
    report = _run(system, judge, tmp_path, tasks=["asr", "tts", "resynthesis", "latency"])
    tasks = report.results["tasks"]
    assert tasks["asr"]["metrics"]["wer"] == 0.0
    for name in ("tts", "resynthesis", "latency"):
        assert tasks[name]["not_run"] == "the system has no vocoder" and tasks[name]["metrics"] == {}


def test_tasks_without_a_dataset_are_not_run(tmp_path):
    judge = OracleJudge()
    config = EvaluationConfig(tasks=["asr", "spoken_qa"], qa_tts=speak, max_questions=3, progress=False)
    report = evaluate_speechgpt(StandIn(judge, load_spoken_questions(limit=3)), config, judges=Judges(judge))
    assert report.results["tasks"]["asr"]["not_run"].startswith("no speech dataset given")
    assert report.results["tasks"]["spoken_qa"]["metrics"]["accuracy"] == 1.0


def _folder_with_a_corrupt_file(folder):
    """good.wav (the first sentence, stored as float so that the stand-in knows it) and a corrupt bad.wav."""
    import soundfile

    folder.mkdir()
    soundfile.write(folder / "good.wav", speak(SENTENCES[0])[0], 16000, subtype="FLOAT")
    (folder / "bad.wav").write_bytes(b"RIFF not really a wave file")
    (folder / "metadata.csv").write_text(f"file_name,text\ngood.wav,{SENTENCES[0]}\nbad.wav,broken file\n")
    return folder


def test_undecodable_audio_is_skipped_counted_and_named_in_a_folder_or_a_saved_dataset(tmp_path):
    from datasets import Audio

    folder = _folder_with_a_corrupt_file(tmp_path / "audio")
    items, skipped = load_speech_items(str(folder))
    assert [item.text for item in items] == [SENTENCES[0]] and skipped == {"corrupt audio": 1}
    assert skipped.names == {"corrupt audio": ["bad.wav"]}
    saved = Dataset.from_dict(
        {"audio": [str(folder / "good.wav"), str(folder / "bad.wav")], "text": [SENTENCES[0], "broken file"]}
    ).cast_column("audio", Audio())
    saved.save_to_disk(str(tmp_path / "saved"))  # the corrupt file's bytes are embedded in the saved dataset
    items, skipped = load_speech_items(str(tmp_path / "saved"))
    assert [item.text for item in items] == [SENTENCES[0]] and skipped.names == {"corrupt audio": ["bad.wav"]}


def test_the_evaluate_verb_names_a_skipped_file_on_screen_and_in_what_it_saves(tmp_path, monkeypatch, capsys):
    from speechgpt_hf.evaluation import harness
    from speechgpt_hf_cli import main as cli_main

    judge = OracleJudge()
    monkeypatch.setattr(harness, "load_system", lambda model, generation_kwargs=None, device=None: StandIn(judge, []))
    monkeypatch.setattr(harness, "load_judges", lambda config: Judges(judge))
    folder = _folder_with_a_corrupt_file(tmp_path / "audio")
    argv = ["evaluate", "stand-in", "--dataset", str(folder), "--tasks", "asr", "--output-dir", str(tmp_path / "eval")]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "asr: wer 0.000" in out and "  dataset: corrupt audio (1):\n    bad.wav\n" in out
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["tasks"]["asr"]["items"] == 1 and results["skipped_inputs"] == {"dataset: corrupt audio": 1}
    assert results["skipped_input_names"] == {"dataset: corrupt audio": ["bad.wav"]}
    assert "- dataset: corrupt audio: 1\n  - `bad.wav`\n" in (tmp_path / "eval" / "report.md").read_text()


def test_metrics_can_fail():
    assert error_rates(["a b c d"], ["a b c d"])["wer"] == 0.0
    assert error_rates(["a b c d"], [""])["wer"] == 1.0
    assert error_rates(["Twenty-one cats!"], ["twenty one cats"])["wer"] == 0.0
    scored = qa_accuracy(["It is Paris.", "a lovely apple", None], [["paris"], ["a"], ["rome"]])
    assert scored["correct"] == [True, True, False]
    assert qa_accuracy(["apple pie"], [["a"]])["correct"] == [False]


def test_shipped_questions_are_well_formed():
    questions = load_spoken_questions()
    assert len(questions) >= 100 and len({q.question for q in questions}) == len(questions)
    assert all(q.answers and all(a == a.lower() for a in q.answers) for q in questions)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="Unknown evaluation task"):
        EvaluationConfig(tasks=["asr", "singing"])
    with pytest.raises(ValueError, match="max_speech_items must be at least 1, or None"):
        EvaluationConfig(max_speech_items=0)


def test_speech_tasks_can_judge_fewer_items_than_asr_reads(tmp_path):
    judge = OracleJudge()
    tasks = ["asr", "tts", "resynthesis"]
    report = _run(StandIn(judge, []), judge, tmp_path, tasks=tasks, max_speech_items=2)
    counts = {name: report.results["tasks"][name]["items"] for name in tasks}
    assert counts == {"asr": len(SENTENCES), "tts": 2, "resynthesis": 2}


def _scripted_chat(tiny_speechgpt, judge: OracleJudge, questions, right: bool):
    """The real chat (tiny random LM, MFCC units, tiny random vocoder) with every `generate` call scripted: it
    writes the reference transcript or question answer when `right`, a wrong one otherwise. Requests, prompts,
    decoding, parsing and voicing are all the chat's own."""
    from transformers import LogitsProcessorList

    from speechgpt_hf.inference.chat import SpeechGPTChat
    from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
    from speechgpt_hf.testing_utils import ScriptedAnswer, build_tiny_vocoder

    sentences = {_key(judge.register(sentence)): sentence for sentence in SENTENCES}
    by_audio = {_key(judge.register(q.question)): q for q in questions}
    by_text = {q.question: q for q in questions}
    wrong = "something else entirely"

    def answer_for(text, audio):
        if audio is not None and text:  # ASR: the transcript
            return f"{sentences[_key(audio)] if right else wrong}<eoa>"
        if audio is not None or text in by_text:  # a question, spoken or written
            question = by_audio[_key(audio)] if audio is not None else by_text[text]
            reply = question.answers[0] if right else wrong
            return f"[tq] {question.question}; [ta] {reply}; [ua] <sosp><3><4><5><4><eosp><eoa>"
        return "<sosp><3><4><5><6><7><eosp><eoa>"  # TTS: units, voiced by the random vocoder

    class ScriptedChat(SpeechGPTChat):
        def _script(self, text, audio):
            ids = self.processor.encode(answer_for(text, audio), add_special_tokens=False)
            return LogitsProcessorList([ScriptedAnswer(ids + [self.processor.tokenizer.eos_token_id])])

        def respond(self, text=None, audio=None, sampling_rate=None, output_modality=None, **kwargs):
            script = self._script(text, audio)
            return super().respond(text, audio, sampling_rate, output_modality, logits_processor=script, **kwargs)

        def stream(self, text=None, audio=None, sampling_rate=None, output_modality=None, **kwargs):
            script = self._script(text, audio)
            return super().stream(text, audio, sampling_rate, output_modality, logits_processor=script, **kwargs)

    model, processor = tiny_speechgpt(num_units=50)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=50)).eval()
    return ScriptedChat(
        model,
        processor,
        unit_tokenizer=units,
        vocoder=build_tiny_vocoder(50),
        generation_kwargs={"max_new_tokens": 80, "do_sample": False},
    )


@pytest.mark.parametrize("right", [True, False])
def test_the_real_chat_through_every_task_scores_what_it_writes(tiny_speechgpt, tmp_path, right):
    judge = OracleJudge()
    chat = _scripted_chat(tiny_speechgpt, judge, load_spoken_questions(limit=2), right)
    report = _run(chat, judge, tmp_path, max_questions=2, latency_items=1)
    tasks = report.results["tasks"]
    assert set(tasks) == {"asr", "tts", "resynthesis", "spoken_qa", "latency"}
    assert tasks["asr"]["items"] == len(SENTENCES)
    assert tasks["asr"]["metrics"]["wer"] == (0.0 if right else 1.0)
    qa = tasks["spoken_qa"]["metrics"]
    assert qa["accuracy"] == qa["text_accuracy"] == (1.0 if right else 0.0)
    assert qa["question_transcript_wer"] == 0.0  # the scripted transcript is the question itself
    # The judge hears the reference (and question) audio perfectly, so its 1.0 on the random vocoder's speech is
    # the vocoder's failure, not the judge's.
    for name in ("tts", "resynthesis"):
        assert tasks[name]["metrics"]["reference_judge_wer"] == 0.0 and tasks[name]["metrics"]["judge_wer"] == 1.0
    assert qa["question_judge_wer"] == 0.0
    assert tasks["latency"]["metrics"]["real_time_factor"] > 0.0
    assert (tmp_path / "report.md").exists()


class CuttingJudge(OracleJudge):
    """The oracle, telling (as the guarded Whisper judge does) that its decoding was cut short where what it heard ends
    in one word four times."""

    def hear(self, waveforms):
        return [
            Heard(text, "loop" if len(set(text.split()[-4:])) == 1 else None) for text in self.transcribe(waveforms)
        ]


class LoopingStandIn(StandIn):
    """The perfect stand-in, except that its speech repeats the last word five more times."""

    def _speech(self, text: str) -> np.ndarray:
        return self.judge.register(text + f" {text.split()[-1]}" * 5)


def test_a_system_that_repeats_itself_is_scored_on_all_it_said_and_the_cut_transcripts_are_counted(tmp_path):
    judge = CuttingJudge()
    report = _run(LoopingStandIn(judge, load_spoken_questions(limit=6)), judge, tmp_path, tasks=["tts", "spoken_qa"])
    tts = report.results["tasks"]["tts"]["metrics"]
    assert tts["judge_wer"] == pytest.approx(15 / sum(len(s.split()) for s in SENTENCES))  # five insertions each
    assert tts["judge_cut_items"] == len(SENTENCES) and tts["reference_judge_cut_items"] == 0
    assert [item["judge_cut"] for item in report.tasks["tts"].items] == ["loop"] * len(SENTENCES)
    qa = report.results["tasks"]["spoken_qa"]["metrics"]
    assert qa["answer_judge_cut_items"] == 6 and qa["question_judge_cut_items"] == 0
    report_md = (tmp_path / "report.md").read_text()
    assert "- tts, the system's speech: 3\n- tts, the reference audio: 0\n" in report_md
    assert "- spoken_qa, the spoken answers: 6\n" in report_md


def test_judges_remember_audio_they_have_heard():
    judge = OracleJudge()
    calls = []
    original = judge.transcribe
    judge.transcribe = lambda waves: calls.append(len(waves)) or original(waves)
    judges = Judges(judge, ConstantMOS())
    first, second = judge.register("one two"), judge.register("three four")
    assert judges.transcribe([first, second, first]) == ["one two", "three four", "one two"]
    assert judges.transcribe([second]) == ["three four"] and calls == [2]
    assert judges.naturalness([first, first]) == [3.0, 3.0]


def test_a_saved_dataset_folder_is_read_as_a_dataset(tmp_path):
    from datasets import DatasetDict

    DatasetDict({"test": _dataset()}).save_to_disk(str(tmp_path / "saved"))
    items, skipped = load_speech_items(str(tmp_path / "saved"), split="test")
    assert [item.text for item in items] == SENTENCES and skipped == {"missing transcript": 1}
