"""Test set-up: offline Hub, a private Hugging Face cache, and a helper that publishes folders into it."""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

# Read once by huggingface_hub at import: set before anything imports it.
_HF_HOME = tempfile.mkdtemp(prefix="speechgpt-hf-tests-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (real checkpoints, long runs)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def publish_to_local_hub(folder: str | Path, repo_id: str, repo_type: str = "model") -> str:
    """Lays `folder` out in the offline Hub cache as `repo_id`, exactly as a download would, and returns the id."""
    prefix = {"model": "models", "dataset": "datasets", "space": "spaces"}[repo_type]
    repo_dir = Path(_HF_HOME) / "hub" / f"{prefix}--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo_dir / "snapshots" / revision
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return repo_id


@pytest.fixture
def local_hub():
    """`local_hub(folder, repo_id, repo_type="model")` publishes a saved folder to the offline Hub cache."""
    return publish_to_local_hub


@pytest.fixture(scope="session")
def hf_home() -> Path:
    return Path(_HF_HOME)


@pytest.fixture
def tiny_speechgpt():
    """`tiny_speechgpt(model_type="llama", num_units=50, **config)` -> (SpeechGPTForCausalLM, SpeechGPTProcessor)."""
    from speechgpt_hf import SpeechGPTProcessor, add_speech_units
    from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer

    def build(model_type: str = "llama", num_units: int = 50, **overrides):
        tokenizer = build_tiny_tokenizer()
        base = build_tiny_causal_lm(model_type, vocab_size=len(tokenizer), **overrides)
        model, tokenizer = add_speech_units(base, tokenizer, num_units=num_units)
        return model.eval(), SpeechGPTProcessor(tokenizer, num_units=num_units)

    return build


def _buggy_decoder(source, name=None):
    raise TypeError("a bug in the decoding code")


@pytest.fixture
def decoding_bug(monkeypatch):
    """`decoding_bug()` makes decoding any audio file raise TypeError, as a bug in our decoding code would."""
    return lambda: monkeypatch.setattr("speechgpt_hf.models.unit_tokenizer.audio._decode_file", _buggy_decoder)


@pytest.fixture
def load_spy(monkeypatch):
    """`load_spy(cls)` -> the list of what `cls.from_pretrained` is asked to load from here on (it still loads)."""

    def watch(cls) -> list:
        loads = []
        original = cls.from_pretrained.__func__

        def spy(owner, name_or_path, *args, **kwargs):
            loads.append(str(name_or_path))
            return original(owner, name_or_path, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
        return loads

    return watch
