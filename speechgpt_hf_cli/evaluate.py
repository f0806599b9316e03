"""`speechgpt-hf evaluate`: ASR, TTS, resynthesis, spoken QA and latency of a SpeechGPT system, judged offline."""

import argparse

HELP = "Measure what a SpeechGPT system hears and says (WER, judge WER, DNSMOS, spoken QA, latency)."

TASK_NAMES = ("asr", "tts", "resynthesis", "spoken_qa", "latency")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a SpeechGPT repo id or folder (its config names the unit tokenizer and vocoder)")
    parser.add_argument("--output-dir", required=True, help="where results.json, items.jsonl and report.md go")
    parser.add_argument(
        "--dataset", default=None, help="speech with transcripts: a Hub dataset id, a saved dataset or an audio folder"
    )
    parser.add_argument("--split", default=None, help="dataset split (the first one when omitted)")
    parser.add_argument("--text-column", default=None, help="transcript column (found by its usual names when omitted)")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--max-items", type=int, default=50, help="utterances used for ASR, TTS and resynthesis")
    parser.add_argument(
        "--max-speech-items",
        type=int,
        default=None,
        help="of those, how many TTS and resynthesis judge (each costs a vocoder pass and a judge); default: all",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=list(TASK_NAMES),
        choices=TASK_NAMES,
        metavar="TASK",
        help=f"tasks to run (default: all of {', '.join(TASK_NAMES)})",
    )
    parser.add_argument(
        "--judge",
        default="whisper-tiny.en",
        help="ASR judge: whisper-tiny.en (offline), pocketsphinx, or a transformers ASR model id or folder",
    )
    parser.add_argument("--no-naturalness", action="store_true", help="skip DNSMOS")
    parser.add_argument(
        "--questions", default=None, help="a jsonl of {id, question, answers} (the shipped set when omitted)"
    )
    parser.add_argument("--max-questions", type=int, default=None, help="spoken QA questions used (all when omitted)")
    parser.add_argument(
        "--question-voice",
        nargs="+",
        default=None,
        metavar="VOICE",
        help="offline voices speaking the questions, taken in turn: engine:speaker (piper:joe, espeak:en-gb+f2) or "
        "piper / espeak-ng (default: espeak:en-gb-x-rp, the voice the reproduction never trains on)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument(
        "--device",
        default=None,
        help="where the LM, unit tokenizer and vocoder run: cuda, cuda:1, cpu, … (default: the first GPU if any, else "
        "the CPU)",
    )


def run(args: argparse.Namespace) -> None:
    from speechgpt_hf.evaluation.eval_data import QUESTION_VOICES
    from speechgpt_hf.evaluation.harness import EvaluationConfig, evaluate_speechgpt

    voices = args.question_voice or QUESTION_VOICES

    config = EvaluationConfig(
        tasks=list(dict.fromkeys(args.tasks)),
        dataset=args.dataset,
        split=args.split,
        text_column=args.text_column,
        audio_column=args.audio_column,
        max_items=args.max_items,
        max_speech_items=args.max_speech_items,
        qa_questions=args.questions,
        max_questions=args.max_questions,
        qa_tts=voices[0] if len(voices) == 1 else list(voices),
        judge=args.judge,
        naturalness=not args.no_naturalness,
        generation_kwargs={"do_sample": False, "max_new_tokens": args.max_new_tokens},
        output_dir=args.output_dir,
        device=args.device,
    )
    report = evaluate_speechgpt(args.model, config)
    for name, task in report.results["tasks"].items():
        shown = task["not_run"] or ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in task["metrics"].items()
        )
        print(f"{name}: {shown}")
    if report.skipped_inputs:
        print(f"Skipped inputs (every one is named in {report.output_dir / 'results.json'}):")
        for line in report.skipped_inputs.lines():
            print(line)
    print(f"Report: {report.output_dir / 'report.md'}")
