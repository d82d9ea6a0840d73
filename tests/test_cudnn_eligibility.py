"""The one cuDNN eligibility predicate (plan.cudnn_ineligible_reason), target choice, and use_cudnn.

Keras 3's use_cudnn: True on a configuration cuDNN cannot run raises ValueError naming why;
"auto" falls back and explain() says why; False never uses cuDNN. Without a GPU every layer
runs on the CPU target, as before the cuDNN path existed.
"""

import numpy as np
import pytest

import lstmgen
from lstmgen import reference
from lstmgen.devices import unavailable
from lstmgen.lower.plan import NOT_PROBED, choose_target, cudnn_ineligible_reason, explain
from lstmgen.spec import LSTMSpec

RIGHT_PADDED = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]], bool)

TABLE = [
    (dict(), None, None),
    (dict(dropout=0.3), None, None),
    (dict(dtype="float64", go_backwards=True, stateful=True, time_major=True,
          return_sequences=True, return_state=True, zero_output_for_mask=True), None, None),
    (dict(activation="relu"), None, "activation='relu'"),
    (dict(recurrent_activation="hard_sigmoid"), None, "recurrent_activation='hard_sigmoid'"),
    (dict(recurrent_dropout=0.2), None, "recurrent_dropout=0.2"),
    (dict(unroll=True), None, "unroll=True"),
    (dict(use_bias=False), None, "use_bias=False"),
    (dict(dropout=0.3, implementation=1), None, "one input mask per gate"),
    (dict(), RIGHT_PADDED, None),
    (dict(), np.array([[1, 0, 1], [1, 1, 1], [1, 1, 1]], bool), "not strictly right-padded"),
    (dict(), np.array([[0, 1, 1], [1, 1, 1], [1, 1, 1]], bool), "not strictly right-padded"),
    (dict(), np.array([[0, 0, 0], [1, 1, 1], [1, 1, 1]], bool), "fully masked"),
]


@pytest.mark.parametrize("kwargs, mask, why", TABLE)
def test_eligibility_table(kwargs, mask, why):
    reason = cudnn_ineligible_reason(LSTMSpec(4, **kwargs), mask)
    assert reason is None if why is None else why in reason


def only_cudnn(why_not):
    """Availability where the cuda target cannot run and cuDNN can (None) or cannot (a reason)."""
    return {"cuda": "no GPU for cuda kernels", "cudnn": why_not}


def test_cudnn_is_chosen_only_where_a_gpu_and_the_library_are_found():
    spec = LSTMSpec(4)
    assert choose_target(spec).target == "cpu"  # not looked for
    assert choose_target(spec, unavailable=only_cudnn("no GPU")).target == "cpu"
    assert choose_target(spec, unavailable=only_cudnn(None)).target == "cudnn"
    assert choose_target(spec.replace(activation="relu"), unavailable=only_cudnn(None)).target == "cpu"
    assert choose_target(spec.replace(use_cudnn=False), unavailable=only_cudnn(None)).target == "cpu"
    assert choose_target(spec, "cpu", unavailable=only_cudnn(None)).target == "cpu"


def test_use_cudnn_true_on_an_ineligible_spec_raises_naming_why():
    with pytest.raises(ValueError, match="use_cudnn=True.*activation='relu'"):
        choose_target(LSTMSpec(4, activation="relu", use_cudnn=True), unavailable=only_cudnn(None))
    with pytest.raises(ValueError, match="use_cudnn=True.*no GPU"):
        choose_target(LSTMSpec(4, use_cudnn=True), unavailable=only_cudnn("no GPU"))
    with pytest.raises(ValueError, match="contradicts target='cpu'"):
        choose_target(LSTMSpec(4, use_cudnn=True), "cpu", unavailable=only_cudnn(None))
    with pytest.raises(ValueError, match="contradicts target='cudnn'"):
        choose_target(LSTMSpec(4, use_cudnn=False), "cudnn", unavailable=only_cudnn(None))
    assert choose_target(LSTMSpec(4, use_cudnn=True), unavailable=only_cudnn(None)).target == "cudnn"


def test_explain_says_why_auto_falls_back():
    text = explain(LSTMSpec(4, recurrent_dropout=0.5), unavailable=only_cudnn(None))
    assert "cudnn: recurrent_dropout=0.5" in text and "falls back to cpu" in text
    assert NOT_PROBED["cudnn"] in explain(LSTMSpec(4))
    assert "right-padded" in explain(LSTMSpec(4), unavailable=only_cudnn(None))
    text = explain(LSTMSpec(4, use_cudnn=False), unavailable=only_cudnn(None))
    assert "cudnn: use_cudnn=False" in text and "right-padded" not in text


@pytest.mark.skipif(None in unavailable().values(),
                    reason="checks what a machine without a GPU does; a GPU target is available here")
def test_without_a_gpu_layers_run_on_cpu_and_use_cudnn_true_raises():
    layer = lstmgen.LSTM(3)
    assert layer.target == "cpu" and "cudnn: " in layer.explain()
    layer(np.ones((2, 3, 4), "float32"), mask=np.array([[1, 0, 1], [1, 1, 1]], bool))
    with pytest.raises(ValueError, match="use_cudnn=True"):
        lstmgen.LSTM(3, use_cudnn=True)


class _OnTheDevice:
    """Stands for a device array: what the layer checks before it touches one."""

    __cuda_array_interface__ = {}


@pytest.mark.parametrize("use_cudnn", ("auto", True))
@pytest.mark.parametrize("cuda_why_not", (None, "no numba-cuda"))
def test_each_call_goes_where_its_mask_and_inputs_can_run(monkeypatch, use_cudnn, cuda_why_not):
    """As on a GPU with cuDNN: a right-padded mask runs on cuDNN; other masks (auto) go to the CUDA
    target with device inputs, where it can run, else to cpu; with use_cudnn=True they raise."""
    import lstmgen.runtime

    monkeypatch.setattr(lstmgen.runtime, "_probe_devices",
                        lambda spec, target: {"cuda": cuda_why_not, "cudnn": None})
    layer = lstmgen.LSTM(3, use_cudnn=use_cudnn)
    assert layer.target == "cudnn"
    host, device, holes = np.ones((3, 3, 2)), _OnTheDevice(), np.array([[1, 0, 1], [1, 1, 1], [1, 1, 1]], bool)
    for inputs in (host, device):
        assert layer._call_target(inputs, None) == layer._call_target(inputs, RIGHT_PADDED) == "cudnn"
    if use_cudnn is True:
        with pytest.raises(ValueError, match="use_cudnn=True.*not strictly right-padded"):
            layer._call_target(host, holes)
        return
    assert layer._call_target(host, holes) == "cpu"
    assert layer._call_target(device, holes) == ("cuda" if cuda_why_not is None else "cpu")
    assert "runs on cuda when its inputs are device arrays" in layer.explain()


class _DeviceCopy:
    """Stands for a device array holding `array`: all the CPU path may do with it is copy it home."""

    def __init__(self, array):
        self._array, self.shape = array, array.shape

    def copy_to_host(self):
        return self._array.copy()


def test_a_cpu_call_takes_a_stateful_layers_states_from_the_device():
    """After a call on cuDNN a stateful layer's states are device arrays; a call cuDNN cannot run
    (host inputs with a mask with holes) then runs on cpu from host copies of them."""
    rng = np.random.default_rng(3)
    layer = lstmgen.LSTM(3, stateful=True, return_sequences=True, return_state=True)
    x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    holes = np.array([[1, 0, 1, 1], [1, 1, 0, 1]], bool)
    layer.build(x.shape)
    states = [rng.normal(size=(2, 3)).astype(np.float32) for _ in range(2)]
    layer._states = [_DeviceCopy(s) for s in states]
    expected = reference.forward(layer.spec, *layer.get_weights(), x, mask=holes,
                                 initial_state=states)
    for actual, e in zip(layer(x, mask=holes), expected):
        np.testing.assert_allclose(actual, e, rtol=2e-5, atol=2e-6)
