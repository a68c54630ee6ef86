"""Judge request parameters and adapting them to reasoning models, on literals."""

from stages.score.judge_request import adapted, initial_params, request_kwargs

MAX_TOKENS = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
)
TEMPERATURE = (
    "Unsupported value: 'temperature' does not support 0.0 with this model. Only the default (1) value is supported."
)


def test_classic_and_explicit_parameters():
    assert request_kwargs(initial_params("auto", "auto"), 64) == {"max_tokens": 64, "temperature": 0.0}
    assert request_kwargs(initial_params("max_completion_tokens", "omit"), 64) == {"max_completion_tokens": 64}


def test_auto_adapts_once_to_each_refusal():
    params = initial_params("auto", "auto")
    params = adapted(params, MAX_TOKENS)
    assert request_kwargs(params, 8) == {"max_completion_tokens": 8, "temperature": 0.0}
    assert adapted(params, MAX_TOKENS) is None
    params = adapted(params, TEMPERATURE)
    assert request_kwargs(params, 8) == {"max_completion_tokens": 8}
    assert adapted(params, TEMPERATURE) is None


def test_explicit_settings_and_other_refusals_are_not_adapted():
    assert adapted(initial_params("max_tokens", "zero"), MAX_TOKENS) is None
    assert adapted(initial_params("max_tokens", "zero"), TEMPERATURE) is None
    assert adapted(initial_params("auto", "auto"), "context length exceeded") is None
