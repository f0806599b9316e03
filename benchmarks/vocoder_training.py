"""A short vocoder training run on real speech, judged by an independent offline ASR.

Piper's joe voice (three speaking rates, treated as three speakers) reads the built-in instruction/response
sentences; 50 rows train, 10 held-out rows evaluate. A SpeechUnitTokenizer (MFCC features, k-means fitted on the
training audio) turns the audio into merged units + durations, `train_vocoder` trains a small multi-speaker
UnitHiFiGANVocoder within a wall-time budget, and pocketsphinx transcribes the held-out originals and their
resyntheses (true durations, and durations from the duration predictor) for a word error rate side by side.

    python benchmarks/vocoder_training.py --minutes 45 [--work-dir outputs/vocoder_training]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from speechgpt_hf.data.tts_engines import PiperTTS
from speechgpt_hf.evaluation.pocketsphinx_judge import PocketsphinxJudge
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.training.vocoder import (
    LogMelSpectrogram,
    VocoderTrainingConfig,
    prepare_vocoder_dataset,
    train_vocoder,
)
from speechgpt_hf.training.vocoder.trainer import evaluate_vocoder

SPEAKERS = ["joe", "joe-slow", "joe-fast"]
MODEL = dict(unit_embed_dim=64, speaker_embed_dim=32, duration_predictor_hidden_dim=64, upsample_initial_channel=128)


def sentences(train_rows: int) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (Path(__file__).parents[1] / "speechgpt_hf/data/instructions.jsonl").open()]
    texts = [[row["instruction"], row["response"]] for row in rows]
    train = [t for pair in texts[:train_rows] for t in pair]
    held_out = [t for pair in texts[50:60] for t in pair]
    return train, held_out


def voice(texts: list[str], speakers: list[str]) -> list[dict]:
    """Every text in every voice, resampled to 16 kHz."""
    import torchaudio

    tts, rows = PiperTTS(), []
    for speaker in speakers:
        for text in texts:
            audio, rate = tts(text, speaker=speaker)
            audio = torchaudio.functional.resample(torch.from_numpy(audio), rate, 16000).numpy()
            rows.append({"audio": {"array": audio, "sampling_rate": 16000}, "speaker": speaker, "text": text})
    return rows


def judge_all(vocoder, data, texts: list[str], judge: PocketsphinxJudge) -> dict[str, object]:
    """WER of originals, resynthesis with true durations, resynthesis with predicted durations."""
    originals, true_dur, predicted = [], [], []
    vocoder.eval()
    for example in data.examples:
        originals.append(example["audio"])
        speaker = example["speaker"]
        true_dur.append(
            vocoder.synthesize(example["units"], speaker_id=speaker, durations=example["durations"]).numpy()
        )
        predicted.append(vocoder.synthesize(example["units"], speaker_id=speaker).numpy())
    results = {
        name: judge.judge(audios, texts)
        for name, audios in [
            ("original", originals),
            ("resynthesis", true_dur),
            ("resynthesis_predicted_durations", predicted),
        ]
    }
    return {
        "wer": {k: v.wer for k, v in results.items()},
        "transcripts": {k: v.transcripts for k, v in results.items()},
        "waves": {"resynthesis": true_dur, "resynthesis_predicted_durations": predicted},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=45.0, help="wall-time budget of the training itself")
    parser.add_argument("--num-units", type=int, default=100)
    parser.add_argument("--discriminator-start-step", type=int, default=1500, help="generator-only warm-up steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 suits a CPU shared with others)")
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--segment-frames", type=int, default=24)
    parser.add_argument("--train-rows", type=int, default=50, help="instruction rows (2 sentences each) to train on")
    parser.add_argument("--work-dir", default="outputs/vocoder_training")
    parser.add_argument("--report", default=str(Path(__file__).with_suffix(".md")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)  # a fresh run every time
    started = time.time()
    train_texts, eval_texts = sentences(args.train_rows)
    train_rows, eval_rows = voice(train_texts, SPEAKERS), voice(eval_texts, ["joe"])
    voiced_s = time.time() - started
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=args.num_units))
    tokenizer.fit([row["audio"] for row in train_rows], progress=False)
    train = prepare_vocoder_dataset(train_rows, unit_tokenizer=tokenizer, speaker_column="speaker")
    evaluation = prepare_vocoder_dataset(
        eval_rows, unit_tokenizer=tokenizer, speaker_column="speaker", speakers=train.speakers
    )
    config = VocoderTrainingConfig(
        output_dir=str(work),
        model=MODEL,
        batch_size=args.batch_size,
        segment_frames=args.segment_frames,
        max_steps=100_000,
        time_limit_minutes=args.minutes,
        discriminator_width=0.25,
        discriminator_start_step=args.discriminator_start_step,
        log_steps=10,
        eval_steps=250,
        save_steps=250,
        num_audio_samples=2,
        cpu=True,
    )
    train_started = time.time()
    vocoder = train_vocoder(config, train, evaluation, num_units=args.num_units)
    train_s = time.time() - train_started
    last = max(work.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((last / "trainer_state.json").read_text())
    mel = LogMelSpectrogram(
        16000, config.n_fft, config.hop_length, config.win_length, config.n_mels, config.f_min, config.f_max
    )
    mel_distance = evaluate_vocoder(vocoder, evaluation, mel, work / "final_samples", 3)
    judged = judge_all(vocoder, evaluation, eval_texts, PocketsphinxJudge())
    shutil.copy(work / "loss.png", Path(args.report).with_name("vocoder_training_loss.png"))
    facts = dict(
        voiced_s=voiced_s,
        train_s=train_s,
        steps=state["step"],
        epochs=state["epoch"],
        mel_distance=mel_distance,
        train_utterances=len(train),
        train_audio_s=sum(len(e["audio"]) for e in train.examples) / 16000,
        eval_utterances=len(evaluation),
        params=sum(p.numel() for p in vocoder.parameters()),
        history=[h for h in state["history"] if "eval_mel_distance" in h],
    )
    (work / "result.json").write_text(
        json.dumps({**facts, "wer": judged["wer"], "transcripts": judged["transcripts"]}, indent=1)
    )
    Path(args.report).write_text(report(facts, judged, eval_texts, args))
    print(Path(args.report).read_text())


def report(facts: dict, judged: dict, texts: list[str], args: argparse.Namespace) -> str:
    wer = judged["wer"]
    curve = ", ".join(f"step {h['step']}: {h['eval_mel_distance']:.3f}" for h in facts["history"])
    examples = "\n".join(
        f"| {texts[i]} | {judged['transcripts']['original'][i]} | {judged['transcripts']['resynthesis'][i]} |"
        for i in range(min(5, len(texts)))
    )
    return f"""# Vocoder training run on real speech (CPU)

Script: `python benchmarks/vocoder_training.py --minutes {args.minutes:g} --num-units {args.num_units}
--discriminator-start-step {args.discriminator_start_step} --batch-size {args.batch_size} --segment-frames {args.segment_frames}`.
Machine: 2 shared CPU cores (other agents were training and testing at the same time, load average 4-10), no GPU.

- Data: Piper joe voice at three speaking rates (3 speakers) reading 100 built-in sentences:
  {facts["train_utterances"]} training utterances ({facts["train_audio_s"]:.0f} s of speech); 20 held-out sentences
  ({facts["eval_utterances"]} utterances, speaker joe) for evaluation. Voicing took {facts["voiced_s"]:.0f} s.
- Units: SpeechUnitTokenizer with MFCC features, k-means K={args.num_units} fitted on the training audio, merged
  with durations (no HuBERT weights can be downloaded here).
- Vocoder: multi-speaker UnitHiFiGANVocoder, 128 initial channels, upsampling 5-4-4-2-2, kernels 3/7/11,
  duration predictor; {facts["params"] / 1e6:.2f} M parameters. Discriminators MPD + MSD at width 0.25.
  Batch {args.batch_size} segments of {args.segment_frames} frames, {args.threads} torch thread(s), AdamW 2e-4, betas (0.8, 0.99); generator-only warm-up on mel +
  duration losses for the first {args.discriminator_start_step} steps, then the full GAN (LSGAN + feature matching).
- Training: {facts["steps"]} steps ({facts["epochs"]} epochs) in {facts["train_s"] / 60:.1f} min of wall time.
  Validation mel distance (log-mel L1, true durations): {curve or "n/a"}; final {facts["mel_distance"]:.3f}.
  Loss plot: `benchmarks/vocoder_training_loss.png`.

## Intelligibility judged by pocketsphinx (en-us), {len(texts)} held-out sentences

| audio | WER |
|---|---|
| original Piper speech (16 kHz) | {wer["original"]:.1%} |
| resynthesis, true durations | {wer["resynthesis"]:.1%} |
| resynthesis, predicted durations | {wer["resynthesis_predicted_durations"]:.1%} |

| reference | heard in the original | heard in the resynthesis |
|---|---|---|
{examples}

A HiFi-GAN needs on the order of 10^5 steps on a GPU to reach the original's quality; a run of this length on
two shared CPU cores shows the pipeline end to end and how far it gets, not a finished vocoder.
"""


if __name__ == "__main__":
    main()
