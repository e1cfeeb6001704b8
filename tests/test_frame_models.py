"""The frame-level models: shapes, the penultimate/classify split, padding invariance,
learning, determinism, output-bias initialisation, input selection, frame-order
(in)variance, the learnable power of the bag of words, and the masked helpers they share.

Every model of this family must have small parameters below; the frame-feature models
(a representation into `resnet_like`) are tested in test_features.py, and any other
registered frame-level model fails `test_every_frame_model_is_tested`."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional

from yt8mkit.models import (
    ModelConfig,
    ModelConfigError,
    create_model,
    get_model_entry,
    init_output_bias,
    list_models,
    resolve_params,
)
from yt8mkit.models.frame_bow import positive_power
from yt8mkit.models.frame_common import (
    masked_max,
    masked_mean,
    masked_pool_time,
    masked_softmax,
    masked_top_k,
)

DIMS = {"rgb": 12, "audio": 6}
NUM_CLASSES = 5
LENGTHS = [10, 7, 1, 4, 10, 2, 9, 5]
BATCH, FRAMES = len(LENGTHS), max(LENGTHS)

OURS = {
    "early_concat_lstm", "lstm_bi_attention", "attention_net", "transformer_encoder",
    "vlad_bow", "td_dense_maxpool", "td_dense_sorting", "td_conv",
}
SMALL: dict[str, dict] = {
    "early_concat_lstm": {"hidden": 12, "head_sizes": [16], "dropout": 0.1},
    "lstm_bi_attention": {"hidden": 8, "attention_size": 8, "head_sizes": [16], "dropout": 0.1},
    "attention_net": {"hidden": 12, "layers": 2, "head_sizes": [16], "dropout": 0.1},
    "transformer_encoder": {"d_model": 16, "heads": 2, "feedforward": 16, "head_sizes": [16],
                            "dropout": 0.1},
    "vlad_bow": {"clusters": 16, "inner_size": 16, "dropout": 0.1},
    "td_dense_maxpool": {"frame_sizes": [24], "dropout": 0.1},
    "td_dense_sorting": {"inner_size": 16, "top_k": 3, "sort_hidden": 8, "dropout": 0.1},
    "td_conv": {"channel_multipliers": [1.0, 1.0], "head_sizes": [16], "dropout": 0.1},
}
# Variants of our models beyond their small defaults.
VARIANTS: list[tuple[str, dict]] = [
    ("early_concat_lstm", {**SMALL["early_concat_lstm"], "bidirectional": True, "layers": 1}),
    ("early_concat_lstm", {**SMALL["early_concat_lstm"], "pooling": "mean", "layers": 1}),
    ("early_concat_lstm", {**SMALL["early_concat_lstm"], "pooling": "max", "bidirectional": True,
                           "lstm_dropout": 0.2}),
    ("lstm_bi_attention", {**SMALL["lstm_bi_attention"], "attention_heads": 2, "layers": 2}),
    ("attention_net", {**SMALL["attention_net"], "layers": 1, "head_sizes": []}),
    ("transformer_encoder", {**SMALL["transformer_encoder"], "position_coding": True}),
    ("transformer_encoder", {**SMALL["transformer_encoder"], "pooling": "max", "layers": 1}),
    ("vlad_bow", {**SMALL["vlad_bow"], "normalize": True, "learn_power": False,
                  "power_init": 0.6}),
    ("td_dense_maxpool", {"frame_sizes": [24, 16], "head_sizes": [16], "input_norm": "l2",
                          "dropout": 0.1}),
    ("td_conv", {"channel_multipliers": [0.5], "kernel_size": 1, "pool_size": 1}),
    ("td_conv", {**SMALL["td_conv"], "kernel_size": 5, "pool_size": 2, "inputs": ["rgb"]}),
]


def _cases() -> list:
    cases = []
    for name in list_models("frame"):
        if name in SMALL:
            cases.append(pytest.param(name, SMALL[name], id=name))
    cases += [pytest.param(n, p, id=_variant_id(n, p)) for n, p in VARIANTS]
    return cases


def _variant_id(name: str, params: dict) -> str:
    changed = [f"{k}={v}" for k, v in params.items() if SMALL.get(name, {}).get(k) != v]
    return "-".join([name, *changed])


CASES = _cases()
ORDER_FREE = {"attention_net", "transformer_encoder", "vlad_bow", "td_dense_maxpool",
              "td_dense_sorting"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The tensors here are tiny: a second thread only adds synchronisation, which on a
    busy machine costs more than the work itself."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mask(lengths: list[int], frames: int) -> torch.Tensor:
    return torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]


def _batch(seed: int = 0, lengths: list[int] = LENGTHS, frames: int = FRAMES,
           padding: float | None = 0.0) -> dict[str, torch.Tensor]:
    """Random frames, padded after each video's end with ``padding`` (None: noise)."""
    g = torch.Generator().manual_seed(seed)
    mask = _mask(lengths, frames)
    batch = {"frame_mask": mask}
    for name, dim in DIMS.items():
        x = torch.randn(len(lengths), frames, dim, generator=g)
        if padding is not None:
            x = x.masked_fill(~mask[..., None], padding)
        batch[name] = x
    return batch


def _build(name: str, params: dict, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, NUM_CLASSES, DIMS, params)


# Tested in test_features.py (test_frame_feature_models and after).
FEATURE_MODELS = {"features_resnet_like", "centroids_resnet_like",
                  "linear_combinations_resnet_like"}


def test_every_frame_model_is_tested() -> None:
    assert set(list_models("frame")) == OURS | FEATURE_MODELS


def test_our_models_have_cases() -> None:
    registered = set(list_models("frame"))
    assert registered >= OURS, OURS - registered
    assert set(SMALL) >= OURS
    assert all(get_model_entry(name).kind == "frame" for name in OURS)
    assert not OURS & set(list_models("video"))


@pytest.mark.parametrize(("name", "params"), CASES)
def test_shapes_and_forward_is_head_of_penultimate(name: str, params: dict) -> None:
    model = _build(name, params)
    x = _batch()
    for mode in ("eval", "train"):
        getattr(model, mode)()
        with torch.no_grad():
            torch.manual_seed(5)  # the same dropout draws for both passes
            logits = model(x)
            torch.manual_seed(5)
            features = model.penultimate(x)
            assert logits.shape == (BATCH, NUM_CLASSES)
            assert features.shape == (BATCH, model.penultimate_dim)
            assert torch.isfinite(logits).all()
            torch.testing.assert_close(model.classify(features), logits)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_padding_does_not_change_the_output(name: str, params: dict) -> None:
    model = _build(name, params).eval()
    x = _batch()
    with torch.no_grad():
        batched = model(x)
        # Longer padding, filled with noise instead of zeros.
        noise = _batch(seed=1, frames=FRAMES + 7, padding=None)
        longer = model({
            **{k: torch.where(noise["frame_mask"][..., None], functional.pad(x[k], (0, 0, 0, 7)),
                              noise[k]) for k in DIMS},
            "frame_mask": noise["frame_mask"],
        })
        alone = torch.cat([
            model({**{k: x[k][i : i + 1, :n] for k in DIMS}, "frame_mask": _mask([n], n)})
            for i, n in enumerate(LENGTHS)
        ])
    torch.testing.assert_close(longer, batched, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alone, batched, rtol=1e-5, atol=1e-5)


def _learnable_targets(x: dict[str, torch.Tensor], source: str) -> torch.Tensor:
    """Each class a fixed random threshold of the mean frame of one modality."""
    g = torch.Generator().manual_seed(1)
    mean = masked_mean(x[source], x["frame_mask"])
    return (mean @ torch.randn(mean.shape[1], NUM_CLASSES, generator=g) > 0).float()


@pytest.mark.parametrize(("name", "params"), CASES)
def test_adam_steps_reduce_the_loss(name: str, params: dict) -> None:
    model = _build(name, params).train()
    x = _batch()
    targets = _learnable_targets(x, (params.get("inputs") or ["rgb"])[0])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        loss = functional.binary_cross_entropy_with_logits(model(x), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


@pytest.mark.parametrize(("name", "params"), CASES)
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
    with torch.no_grad():
        assert not torch.equal(first.eval()(x), other.eval()(x))


FREQUENCIES = np.array([0.0, 1e-3, 0.2, 0.7, 0.999], np.float32)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_bias_init_gives_the_label_prior(name: str, params: dict) -> None:
    model = _build(name, params).eval()
    init_output_bias(model, FREQUENCIES)
    nn.init.zeros_(model.output.weight)  # the head now ignores its features
    with torch.no_grad():
        probs = torch.sigmoid(model(_batch()))
    expected = torch.from_numpy(np.clip(FREQUENCIES, 1e-5, 1 - 1e-5)).expand_as(probs)
    torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OURS))
def test_selected_inputs_only(name: str) -> None:
    model = _build(name, {**SMALL[name], "inputs": ["audio"]}).eval()
    x = _batch()
    with torch.no_grad():
        base = model(x)
        assert torch.equal(model({**x, "rgb": torch.randn_like(x["rgb"])}), base)
        assert torch.equal(model({"audio": x["audio"], "frame_mask": x["frame_mask"]}), base)
        assert not torch.allclose(model({**x, "audio": torch.randn_like(x["audio"])}), base)


@pytest.mark.parametrize("name", sorted(OURS))
def test_frame_order(name: str) -> None:
    """Models that pool without positions ignore the frames' order; the others use it."""
    x = _batch()
    lengths = torch.tensor(LENGTHS)
    # Reverse each video's real frames in place.
    index = torch.arange(FRAMES)[None, :].expand(BATCH, -1)
    index = torch.where(index < lengths[:, None], lengths[:, None] - 1 - index, index)
    reversed_x = {**x, **{k: x[k].gather(1, index[..., None].expand_as(x[k])) for k in DIMS}}
    model = _build(name, SMALL[name]).eval()
    with torch.no_grad():
        same = torch.allclose(model(reversed_x), model(x), rtol=1e-5, atol=1e-5)
    assert same == (name in ORDER_FREE)
    if name == "transformer_encoder":
        coded = _build(name, {**SMALL[name], "position_coding": True}).eval()
        with torch.no_grad():
            assert not torch.allclose(coded(reversed_x), coded(x), rtol=1e-5, atol=1e-5)


def test_missing_mask_or_bad_shapes_are_clear_errors() -> None:
    model = _build("td_dense_maxpool", SMALL["td_dense_maxpool"]).eval()
    x = _batch()
    with pytest.raises(KeyError, match="frame_mask"):
        model({k: x[k] for k in DIMS})
    with pytest.raises(KeyError, match="audio"):
        model({"rgb": x["rgb"], "frame_mask": x["frame_mask"]})
    with pytest.raises(ValueError, match="'rgb' has shape"):
        model({**x, "rgb": x["rgb"][:, :3]})
    with pytest.raises(ValueError, match="'audio' has shape"):
        model({**x, "audio": x["audio"].mean(1)})


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [("td_conv", {"kernel_size": 4}, "odd"),
     ("transformer_encoder", {"d_model": 10, "heads": 4}, "multiple of heads"),
     ("vlad_bow", {"power_init": 0.0}, "power_init"),
     ("early_concat_lstm", {"pooling": "first"}, "pooling"),
     ("td_dense_maxpool", {"frame_sizes": []}, "frame_sizes"),
     ("attention_net", {"head_sizes": [0]}, "head_sizes"),
     ("td_dense_sorting", {"top_k": 0}, "top_k")],
)
def test_invalid_params(name: str, params: dict, match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        create_model(name, NUM_CLASSES, DIMS, params)


def test_config_kind_and_paper_defaults() -> None:
    config = ModelConfig(name="early_concat_lstm")
    assert config.kind == "frame"
    lstm = config.resolved_params()
    assert (lstm.hidden, lstm.layers, lstm.head_sizes) == (1024, 2, [2048])
    assert resolve_params("transformer_encoder").position_coding is False
    assert resolve_params("td_dense_maxpool").frame_sizes == [2048]
    with pytest.raises(ValueError, match="frame-level model, not video-level"):
        ModelConfig(name="td_conv", kind="video")


def test_vlad_bow_is_the_papers_formula() -> None:
    params = {**SMALL["vlad_bow"], "power_init": 0.7, "input_norm": "none"}
    model = _build("vlad_bow", params).eval()
    x = _batch()
    bags = model.bags(x)
    p = model.power.item()
    assert p == pytest.approx(0.7)
    for name in DIMS:
        layer = model.assign[name]
        for i, n in enumerate(LENGTHS):
            y = functional.relu(x[name][i, :n].double() @ layer.weight.double().T
                                + layer.bias.double()) ** p
            expected = torch.softmax(y, dim=1).sum(0)
            torch.testing.assert_close(bags[name][i].double(), expected, rtol=1e-3, atol=1e-3)
        # Soft assignments sum to one per real frame.
        torch.testing.assert_close(bags[name].sum(1), torch.tensor(LENGTHS, dtype=torch.float32))
    normalized = _build("vlad_bow", {**params, "normalize": True}).eval()
    for bag in normalized.bags(x).values():
        torch.testing.assert_close(bag.sum(1), torch.ones(BATCH))


def test_vlad_bow_power_is_trained_and_stays_positive() -> None:
    x = _batch()
    targets = _learnable_targets(x, "rgb")
    for learn in (True, False):
        model = _build("vlad_bow", {**SMALL["vlad_bow"], "learn_power": learn}).train()
        before = model.power.item()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(10):
            loss = functional.binary_cross_entropy_with_logits(model(x), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        after = model.power.item()
        assert after > 0
        assert (after != before) == learn
        assert ("raw_power" in dict(model.named_parameters())) == learn
        assert "raw_power" in model.state_dict()


def test_positive_power_has_finite_gradients_at_zero() -> None:
    eps = 1e-4
    x = torch.tensor([-1.0, 0.0, 1e-9, eps * (1 - 1e-6), eps, 0.5, 2.0], requires_grad=True)
    for p in (0.3, 0.6, 1.0, 2.5):
        power = torch.tensor(p, requires_grad=True)
        y = positive_power(x, power, eps)
        y.sum().backward()
        assert torch.isfinite(x.grad).all() and torch.isfinite(power.grad).all()
        x.grad = None
        assert y[0] == 0 and y[1] == 0 and 0 < y[2] < eps**p
        # Exact from eps on, and continuous there.
        torch.testing.assert_close(y[4:], x[4:].detach() ** p)
        torch.testing.assert_close(y[3], y[4], rtol=1e-5, atol=0.0)


def test_td_conv_convolves_over_time_with_features_as_channels() -> None:
    model = _build("td_conv", {**SMALL["td_conv"], "channel_multipliers": [0.5, 2.0]})
    for name, width in DIMS.items():
        first, second = model.towers[name]
        assert (first.conv.in_channels, first.conv.out_channels) == (width, width // 2)
        assert second.conv.out_channels == 2 * width
    # One frame changed, early in a long video: with kernel 3 and no pooling, only the
    # neighbouring frames' activations change.
    block = _build("td_conv", {"channel_multipliers": [1.0], "pool_size": 1}).towers["rgb"][0]
    block.eval()
    x, mask = _batch()["rgb"], _mask(LENGTHS, FRAMES)
    changed = x.clone()
    changed[0, 2] += 1.0
    with torch.no_grad():
        diff = (block(changed, mask)[0] - block(x, mask)[0]).abs().amax(dim=2)
    assert diff[0, 1:4].min() > 0
    assert diff[0, :1].max() == 0 and diff[0, 4:].max() == 0 and diff[1:].max() == 0


def _per_video(x: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
    return [x[i, :n] for i, n in enumerate(lengths)]


def test_masked_helpers_match_per_video_results() -> None:
    x = _batch(padding=None)["rgb"]
    mask = _mask(LENGTHS, FRAMES)
    videos = _per_video(x, LENGTHS)
    torch.testing.assert_close(masked_mean(x, mask), torch.stack([v.mean(0) for v in videos]))
    torch.testing.assert_close(masked_max(x, mask), torch.stack([v.amax(0) for v in videos]))
    weights = masked_softmax(x, mask)
    for i, v in enumerate(videos):
        torch.testing.assert_close(weights[i, : len(v)], torch.softmax(v, dim=0))
    assert (weights[~mask] == 0).all()
    top = masked_top_k(x, mask, 4)
    for i, v in enumerate(videos):
        values = v.sort(dim=0, descending=True).values
        padded = torch.cat([values, values[-1:].expand(max(0, 4 - len(v)), -1)])[:4]
        torch.testing.assert_close(top[i], padded)
    assert masked_top_k(x[:, :2], mask[:, :2], 3).shape == (BATCH, 3, DIMS["rgb"])
    pooled, pooled_mask = masked_pool_time(x, mask, 3)
    assert pooled_mask.tolist() == _mask([math.ceil(n / 3) for n in LENGTHS], 4).tolist()
    for i, v in enumerate(videos):
        expected = torch.stack([v[s : s + 3].amax(0) for s in range(0, len(v), 3)])
        torch.testing.assert_close(pooled[i, : len(expected)], expected)
        assert (pooled[i, len(expected) :] == 0).all()
