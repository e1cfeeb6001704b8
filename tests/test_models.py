"""The model registry and the video-level models: shapes, learning, determinism, input
selection, parameter validation, output-bias initialisation, and the exact forms of MoE
and context gating."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torch.nn import functional

from yt8mkit.models import (
    Classifier,
    ModelConfig,
    ModelConfigError,
    create_model,
    init_output_bias,
    list_models,
    register_model,
)
from yt8mkit.models.logistic import LogisticParams

DIMS = {"rgb": 24, "audio": 8}
NUM_CLASSES = 7
BATCH = 16

# (registered name, params) pairs covering every video-level model and the variants.
CASES: list[tuple[str, dict]] = [
    ("logistic", {}),
    ("logistic", {"input_norm": "none"}),
    ("moe", {"num_mixtures": 3}),
    ("resnet_like", {"inner_size": 16, "dropout": 0.1}),
    ("resnet_like", {"inner_size": 32, "av_id_block_num": 2, "concat_id_block_num": 0}),
    ("resnet_like", {"inner_size": 16, "dropout": 0.1, "context_gating": True}),
    ("resnet_like", {"inner_size": 16, "dropout": 0.1, "bottleneck": 4}),
    ("resnet_like", {"inner_size": 16, "dropout": 0.1, "inputs": ["rgb"]}),
    ("resnet_like", {"inner_size": 16, "dropout": 0.1, "inputs": ["audio"], "input_norm": "none"}),
    ("student_mlp", {"depth": 2, "width": 16, "dropout": 0.1}),
    ("student_mlp", {"depth": 1, "width": 16, "activation": "swish", "batchnorm": False}),
    ("student_mlp", {"depth": 0}),
]
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in params.items()) or 'default'}"
            for name, params in CASES]


def _batch(seed: int = 0, batch: int = BATCH) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, dim, generator=g) for name, dim in DIMS.items()}


def _build(name: str, params: dict, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, NUM_CLASSES, DIMS, params)


def test_every_video_model_has_a_case() -> None:
    assert set(list_models("video")) <= {name for name, _ in CASES}
    assert {"logistic", "moe", "resnet_like"} <= set(list_models())


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_shapes_and_forward_is_head_of_penultimate(name: str, params: dict) -> None:
    model = _build(name, params).eval()
    x = _batch()
    with torch.no_grad():
        logits = model(x)
        features = model.penultimate(x)
        assert logits.shape == (BATCH, NUM_CLASSES)
        assert features.shape == (BATCH, model.penultimate_dim)
        assert torch.isfinite(logits).all()
        torch.testing.assert_close(model.classify(features), logits)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_adam_steps_reduce_the_loss(name: str, params: dict) -> None:
    model = _build(name, params).train()
    x = _batch()
    # Learnable targets: each class is a fixed random threshold of the rgb or audio input.
    g = torch.Generator().manual_seed(1)
    source = x["audio"] if params.get("inputs") == ["audio"] else x["rgb"]
    projection = torch.randn(source.shape[1], NUM_CLASSES, generator=g)
    targets = (source @ projection > 0).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(50):
        loss = functional.binary_cross_entropy_with_logits(model(x), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.7 * losses[0], losses


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_same_seed_same_model(name: str, params: dict) -> None:
    x = _batch()
    first, second = _build(name, params, seed=3), _build(name, params, seed=3)
    other = _build(name, params, seed=4)
    for mode in ("eval", "train"):
        outputs = []
        for model in (first, second):
            getattr(model, mode)()
            torch.manual_seed(9)  # dropout draws
            outputs.append(model(x).detach())
        assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(first.eval()(x), other.eval()(x))


@pytest.mark.parametrize("name", ["logistic", "moe", "resnet_like"])
@pytest.mark.parametrize(("used", "unused"), [("rgb", "audio"), ("audio", "rgb")])
def test_selected_inputs_only(name: str, used: str, unused: str) -> None:
    small = {"inner_size": 16} if name == "resnet_like" else {}
    model = _build(name, {**small, "inputs": [used]}).eval()
    x = _batch()
    changed_unused = {**x, unused: torch.randn_like(x[unused]) * 10}
    changed_used = {**x, used: torch.randn_like(x[used])}
    with torch.no_grad():
        base = model(x)
        assert torch.equal(model(changed_unused), base)
        assert not torch.allclose(model(changed_used), base)
        assert torch.equal(model({used: x[used]}), base)  # the unused feature may be absent
    both = _build(name, small).eval()
    with torch.no_grad():
        assert not torch.allclose(both(changed_unused), both(x))


def test_missing_input_in_batch_is_a_clear_error() -> None:
    model = _build("logistic", {}).eval()
    with pytest.raises(KeyError, match="audio"):
        model({"rgb": torch.zeros(2, DIMS["rgb"])})


@pytest.mark.parametrize("name", ["logistic", "moe", "resnet_like"])
def test_l2_input_norm_ignores_scale(name: str) -> None:
    small = {"inner_size": 16} if name == "resnet_like" else {}
    x = _batch()
    scaled = {k: 5 * v for k, v in x.items()}
    with torch.no_grad():
        normed = _build(name, {**small, "input_norm": "l2"}).eval()
        torch.testing.assert_close(normed(scaled), normed(x))
        raw = _build(name, {**small, "input_norm": "none"}).eval()
        assert not torch.allclose(raw(scaled), raw(x))


def test_unknown_param_lists_valid_keys() -> None:
    with pytest.raises(ModelConfigError, match=r"unknown parameter\(s\) \['inner_sise'\]") as info:
        create_model("resnet_like", NUM_CLASSES, DIMS, {"inner_sise": 16})
    assert "inner_size" in str(info.value) and "av_id_block_num" in str(info.value)


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ModelConfigError, match=r"known models: .*resnet_like"):
        create_model("resnet_unlike", NUM_CLASSES, DIMS)


@pytest.mark.parametrize(
    "params",
    [{"dropout": 1.5}, {"inner_size": 0}, {"inputs": []}, {"inputs": ["rgb", "rgb"]},
     {"input_norm": "l1"}, {"bottleneck": 0}],
)
def test_invalid_param_values(params: dict) -> None:
    with pytest.raises(ModelConfigError, match="resnet_like"):
        create_model("resnet_like", NUM_CLASSES, DIMS, params)


def test_input_not_in_the_data() -> None:
    with pytest.raises(ModelConfigError, match=r"\['video'\].*available: \['rgb', 'audio'\]"):
        create_model("logistic", NUM_CLASSES, DIMS, {"inputs": ["video"]})


def test_params_as_object_and_dims_from_the_caller() -> None:
    model = create_model("logistic", 3, {"a": 5, "b": 2}, LogisticParams(input_norm="none"))
    assert model.penultimate_dim == 7
    assert model({"a": torch.ones(4, 5), "b": torch.ones(4, 2)}).shape == (4, 3)
    with pytest.raises(ModelConfigError, match="already registered"):
        register_model("logistic", params=LogisticParams)(nn.Linear)


def test_model_config_kind_and_validation() -> None:
    config = ModelConfig(name="resnet_like", params={"inner_size": 16})
    assert config.kind == "video"
    assert config.resolved_params().dropout == 0.5
    again = ModelConfig.model_validate(config.model_dump())
    assert again == config
    assert isinstance(config.build(NUM_CLASSES, DIMS), Classifier)
    with pytest.raises(ValidationError, match="valid parameters"):
        ModelConfig(name="resnet_like", params={"width": 3})
    with pytest.raises(ValidationError, match="video-level model, not frame-level"):
        ModelConfig(name="resnet_like", kind="frame")
    with pytest.raises(ValidationError, match="unknown model"):
        ModelConfig(name="nope")


FREQUENCIES = np.array([0.0, 1e-3, 0.05, 0.3, 0.6, 0.9, 0.999], np.float32)


def _zero_head_weights(model: nn.Module) -> None:
    """Make the head ignore its features, leaving only its biases."""
    for attr in ("output", "gates", "experts"):
        layer = getattr(model, attr, None)
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.weight)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_bias_init_gives_the_label_prior(name: str, params: dict) -> None:
    model = _build(name, params).eval()
    init_output_bias(model, FREQUENCIES)
    _zero_head_weights(model)
    with torch.no_grad():
        probs = torch.sigmoid(model(_batch()))
    expected = torch.from_numpy(np.clip(FREQUENCIES, 1e-5, 1 - 1e-5)).expand_as(probs)
    torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-6)
    if hasattr(model, "output") and getattr(model, "gating", None) is None:
        torch.testing.assert_close(torch.sigmoid(model.output.bias), expected[0])


def test_bias_init_rejects_bad_frequencies() -> None:
    model = _build("logistic", {})
    with pytest.raises(ValueError, match="7 classes"):
        init_output_bias(model, np.full(3, 0.1))
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        init_output_bias(model, np.full(NUM_CLASSES, 1.5))


def test_moe_is_the_starter_mixture() -> None:
    mixtures = 3
    model = _build("moe", {"num_mixtures": mixtures, "input_norm": "none"}).eval()
    x = _batch()
    features = torch.cat([x["rgb"], x["audio"]], dim=1).double()
    gates = (features @ model.gates.weight.double().T + model.gates.bias.double())
    experts = features @ model.experts.weight.double().T + model.experts.bias.double()
    gate_dist = torch.softmax(gates.view(-1, mixtures + 1), dim=1)
    expert_dist = torch.sigmoid(experts.view(-1, mixtures))
    expected = (gate_dist[:, :mixtures] * expert_dist).sum(1).view(BATCH, NUM_CLASSES)
    with torch.no_grad():
        probs = torch.sigmoid(model(x).double())
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-7)
    with torch.no_grad():  # far from the origin the log-space form stays finite
        assert torch.isfinite(model({k: 1e4 * v for k, v in x.items()})).all()


def test_context_gating_gates_probabilities() -> None:
    model = _build("resnet_like", {"inner_size": 16, "context_gating": True}).eval()
    nn.init.normal_(model.gating.gate.weight, std=0.5)
    x = _batch()
    with torch.no_grad():
        ungated = model.output(model.penultimate(x)).double()
        p = torch.sigmoid(ungated)
        gate = model.gating.gate
        expected = p * torch.sigmoid(p @ gate.weight.double().T + gate.bias.double())
        torch.testing.assert_close(torch.sigmoid(model(x).double()), expected, rtol=1e-5,
                                   atol=1e-7)


def _resnet_like_parameter_count(inner: int, dims: list[int], av: int, concat: int,
                                 classes: int) -> int:
    def linear(a: int, b: int) -> int:
        return a * b + b

    def fc_block(a: int, b: int) -> int:
        return linear(a, b) + 2 * b  # BatchNorm's weight and bias

    def identity(outer: int, hidden: int) -> int:
        return fc_block(outer, hidden) + linear(hidden, outer)

    towers = sum(fc_block(d, inner) + av * identity(inner, inner) for d in dims)
    width = inner * len(dims)
    return (towers + concat * identity(width, inner) + fc_block(width, inner)
            + linear(inner, classes))


def test_resnet_like_default_size_is_the_papers() -> None:
    model = create_model("resnet_like", 3862, {"rgb": 1024, "audio": 128})
    count = sum(p.numel() for p in model.parameters())
    assert count == _resnet_like_parameter_count(2048, [1024, 128], 1, 1, 3862) == 52_260_630
    assert model.penultimate_dim == 2048
    bottleneck = create_model("resnet_like", 10, DIMS, {"inner_size": 16, "bottleneck": 4})
    assert bottleneck.penultimate_dim == 4
