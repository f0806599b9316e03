"""UnitSpanLogitsProcessor: unit tokens only inside <sosp>…<eosp>, text only outside, in every decoding mode."""

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from speechgpt_hf.inference.constrained_decoding import UnitSpanLogitsProcessor, unit_span_logits_processor

NUM_UNITS = 50
NEW_TOKENS = 24


class Bias(LogitsProcessor):
    """Pushes the given tokens far up, standing in for a model that has learned to over-produce them."""

    def __init__(self, token_ids, amount: float = 50.0) -> None:
        self.token_ids, self.amount = list(token_ids), amount

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.token_ids] += self.amount
        return scores


def _violations(row: list[int], constraint: UnitSpanLogitsProcessor, start: int) -> list[int]:
    """Positions from `start` on that break the span rules, found by walking the row token by token."""
    units = range(constraint.unit_token_offset, constraint.unit_token_offset + constraint.num_units)
    inside, bad = False, []
    for position, token in enumerate(row):
        span_token = token in units or token == constraint.eosp_token_id
        if position >= start and span_token != inside:
            bad.append(position)
        if token == constraint.sosp_token_id:
            inside = True
        elif token == constraint.eosp_token_id:
            inside = False
    return bad


@pytest.fixture
def speechgpt(tiny_speechgpt):
    return tiny_speechgpt(num_units=NUM_UNITS)


def _generate(model, inputs, *processors, **settings):
    settings = {"max_new_tokens": NEW_TOKENS, "do_sample": False, **settings}
    with torch.no_grad():
        return model.generate(**inputs, logits_processor=LogitsProcessorList(processors), **settings)


def _unit_bias(processor) -> Bias:
    return Bias(range(processor.unit_token_offset, processor.unit_token_offset + processor.num_units))


# Hand-made scores ---------------------------------------------------------------------------------------

OFFSET, K, SOSP, EOSP, VOCAB, PAD = 10, 5, 20, 21, 24, 0
UNITS = set(range(OFFSET, OFFSET + K))


def _allowed(constraint, rows):
    scores = torch.arange(len(rows) * VOCAB, dtype=torch.float).reshape(len(rows), VOCAB)
    masked = constraint(torch.tensor(rows), scores)
    finite = torch.isfinite(masked)
    assert torch.equal(masked[finite], scores[finite])  # allowed scores are left as they were
    return [set(torch.nonzero(row).flatten().tolist()) for row in finite]


def test_masks_follow_the_span_state_of_each_row():
    constraint = UnitSpanLogitsProcessor(OFFSET, K, SOSP, EOSP)
    rows = [
        [PAD, PAD, 3, SOSP, 11],  # left-padded, inside an open span
        [SOSP, 11, EOSP, 3, 4],  # span closed: outside
        [PAD, PAD, PAD, 5, SOSP],  # prompt ending in <sosp>
        [PAD, 11, 12, 5, 6],  # bare units, no span: outside
        [SOSP, 11, EOSP, SOSP, 12],  # the second span is open
    ]
    inside = UNITS | {EOSP}
    outside = set(range(VOCAB)) - inside
    assert _allowed(constraint, rows) == [inside, outside, inside, outside, inside]


def test_a_full_span_may_only_close():
    constraint = UnitSpanLogitsProcessor(OFFSET, K, SOSP, EOSP, max_span_units=2)
    rows = [[PAD, SOSP, 11], [SOSP, 11, 12], [SOSP, 11, EOSP], [11, 12, 13]]
    inside = UNITS | {EOSP}
    outside = set(range(VOCAB)) - inside
    assert _allowed(constraint, rows) == [inside, {EOSP}, outside, outside]


def test_bad_ids_and_foreign_vocabularies_are_refused():
    with pytest.raises(ValueError, match="inside the unit token block"):
        UnitSpanLogitsProcessor(OFFSET, K, OFFSET + 1, EOSP)
    with pytest.raises(ValueError, match="max_span_units must be positive"):
        UnitSpanLogitsProcessor(OFFSET, K, SOSP, EOSP, max_span_units=0)
    with pytest.raises(ValueError, match="built for another model"):
        UnitSpanLogitsProcessor(OFFSET, K, SOSP, EOSP)(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 16))


def test_built_alike_from_the_model_its_config_and_its_processor(speechgpt):
    model, processor = speechgpt
    built = [unit_span_logits_processor(source) for source in (model, model.config, processor)]
    ids = {(c.unit_token_offset, c.num_units, c.sosp_token_id, c.eosp_token_id) for c in built}
    assert ids == {(processor.unit_token_offset, NUM_UNITS, processor.sosp_token_id, processor.eosp_token_id)}
    assert unit_span_logits_processor(processor, max_span_units=7).max_span_units == 7
    with pytest.raises(TypeError, match="SpeechGPTProcessor"):
        unit_span_logits_processor(object())
    model.config.unit_token_offset = None
    with pytest.raises(ValueError, match="add_speech_units"):
        unit_span_logits_processor(model)


# The real generate loop ---------------------------------------------------------------------------------


def test_unit_hungry_model_leaks_units_into_text_unless_constrained(speechgpt):
    model, processor = speechgpt
    inputs = processor(processor.build_prompt("Tell me about the weather."), return_tensors="pt")
    start = inputs["input_ids"].shape[1]
    constraint = unit_span_logits_processor(processor)
    free = _generate(model, inputs, _unit_bias(processor))[0].tolist()
    constrained = _generate(model, inputs, _unit_bias(processor), constraint)[0].tolist()
    assert _violations(free, constraint, start)
    leaks = "outside the spoken answer's unit span"  # parse reports leaked units (and keeps them out of the text)
    assert [p for p in processor.parse(free[start:]).problems if leaks in p]
    assert _violations(constrained, constraint, start) == []
    assert not [p for p in processor.parse(constrained[start:]).problems if leaks in p]


def test_prompt_ending_in_sosp_is_continued_with_units(speechgpt):
    model, processor = speechgpt
    inputs = processor(processor.build_prompt("Say hello.") + "[ua] <sosp>", return_tensors="pt")
    assert inputs["input_ids"][0, -1] == processor.sosp_token_id
    start = inputs["input_ids"].shape[1]
    text_bias = Bias(processor.encode(" the", add_special_tokens=False)[:1])
    constraint = unit_span_logits_processor(processor)
    free = _generate(model, inputs, text_bias)[0].tolist()
    constrained = _generate(model, inputs, text_bias, constraint)[0].tolist()
    assert _violations(free, constraint, start)
    assert _violations(constrained, constraint, start) == []
    assert processor.ids_to_units(constrained[start : start + 1])  # the first new token is a unit


def test_max_span_units_closes_the_span_then_text_follows(speechgpt):
    model, processor = speechgpt
    inputs = processor(processor.build_prompt("Say hello.") + "[ua] <sosp>", return_tensors="pt")
    start = inputs["input_ids"].shape[1]
    constraint = unit_span_logits_processor(model, max_span_units=4)
    new = _generate(model, inputs, _unit_bias(processor), constraint)[0, start:].tolist()
    assert len(processor.ids_to_units(new[:4])) == 4 and new[4] == processor.eosp_token_id
    assert processor.ids_to_units(new[5:]) == []


def test_left_padded_batch_keeps_each_row_in_its_own_state(speechgpt):
    model, processor = speechgpt
    prompts = [
        processor.build_prompt("Hi.") + "[ua] <sosp><3><4>",
        processor.build_prompt("Please transcribe the following recording into text, briefly and truthfully."),
    ]
    inputs = processor(prompts, return_tensors="pt")
    assert inputs["attention_mask"][0, 0] == 0  # the shorter prompt is padded on the left
    start = inputs["input_ids"].shape[1]
    constraint = unit_span_logits_processor(processor)
    output = _generate(model, inputs, _unit_bias(processor), constraint).tolist()
    assert [_violations(row, constraint, start) for row in output] == [[], []]
    assert processor.ids_to_units(output[0][start : start + 1]) and not processor.ids_to_units(
        output[1][start : start + 1]
    )


def test_sampling_and_beam_search_stay_within_the_rules(speechgpt):
    model, processor = speechgpt
    inputs = processor(processor.build_prompt("Speak about the fox."), return_tensors="pt")
    start = inputs["input_ids"].shape[1]
    constraint = unit_span_logits_processor(processor)
    leaky = Bias(range(processor.unit_token_offset, processor.unit_token_offset + NUM_UNITS), amount=3.0)
    modes = {
        "sampling": {"do_sample": True, "num_return_sequences": 4},
        "beam search": {"num_beams": 4, "num_return_sequences": 4},
    }
    for name, settings in modes.items():
        torch.manual_seed(0)
        free = _generate(model, inputs, leaky, **settings).tolist()
        torch.manual_seed(0)
        constrained = _generate(model, inputs, leaky, constraint, **settings).tolist()
        assert any(_violations(row, constraint, start) for row in free), name
        assert [_violations(row, constraint, start) for row in constrained] == [[]] * 4, name


def test_sampling_with_top_k_still_finds_the_units_when_text_dominates(speechgpt):
    model, processor = speechgpt
    inputs = processor(processor.build_prompt("Say hello.") + "[ua] <sosp>", return_tensors="pt")
    start = inputs["input_ids"].shape[1]
    text_bias = Bias(range(processor.unit_token_offset))  # every top-k token is text
    constraint = unit_span_logits_processor(processor)
    torch.manual_seed(0)
    free = _generate(model, inputs, text_bias, do_sample=True, top_k=5)[0].tolist()
    torch.manual_seed(0)
    constrained = _generate(model, inputs, text_bias, constraint, do_sample=True, top_k=5)[0].tolist()
    assert _violations(free, constraint, start)
    assert _violations(constrained, constraint, start) == []
    assert processor.ids_to_units(constrained[start : start + 1])
