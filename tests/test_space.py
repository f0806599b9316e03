"""The Gradio Space answers a spoken request through its API, keeps the conversation, and loads lazily."""

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces_demo"))

import app  # noqa: E402

from speechgpt_hf.inference.chat import SpeechGPTChat  # noqa: E402
from speechgpt_hf.models.speechgpt.prompt_format import format_chain_of_modality_instruction  # noqa: E402
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig  # noqa: E402


@pytest.fixture
def served(tiny_speechgpt):
    from gradio_client import Client

    loads = []

    def factory():
        model, processor = tiny_speechgpt(num_units=30)
        units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=30))
        loads.append(SpeechGPTChat(model, processor, unit_tokenizer=units, generation_kwargs={"max_new_tokens": 8}))
        return loads[-1]

    demo = app.build_demo(app.LazyChat(factory))
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False), loads
    finally:
        demo.close()


def test_spoken_request_round_trip_through_the_api(served, tmp_path):
    from gradio_client import handle_file

    client, loads = served
    assert loads == []  # nothing loaded before the first request
    wav = tmp_path / "hello.wav"
    t = np.arange(16000) / 16000
    soundfile.write(wav, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)
    answer, speech, cleared = client.predict("Recognize this. This is input:", handle_file(str(wav)), api_name="/respond")
    assert "**Answer:**" in answer and cleared == ""
    (chat,) = loads
    assert len(chat.history) == 1 and chat.history[0][0].startswith("Recognize this. This is input: <sosp><")
    client.predict("and now?", None, api_name="/respond")
    assert len(loads) == 1 and [q for q, _ in chat.history][1] == "and now?"  # the session kept the first turn


def test_the_answer_modality_can_be_chosen(served):
    client, loads = served
    client.predict("Name a red fruit.", None, "text", api_name="/respond")
    (chat,) = loads
    assert chat.history[-1][0] == format_chain_of_modality_instruction("Name a red fruit.", "text", "text")


def test_an_empty_request_is_refused_with_a_message(served):
    client, _ = served
    with pytest.raises(Exception, match="Type something"):
        client.predict("", None, api_name="/respond")
