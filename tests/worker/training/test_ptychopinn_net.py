"""The ptychopinn network against PtychoPINN's Keras definition.

Source: hoidn/PtychoPINN ptycho/model.py (create_encoder, create_decoder_base,
create_decoder_last, create_decoder_amp/_phase, create_autoencoder) with the defaults of
ptycho/config/config.py ModelConfig (n_filters_scale 2, object_big, probe_big, pad_object)
and TrainingConfig (intensity_scale_trainable True, probe_trainable False). The expected
numbers below are worked out by hand from that definition: a Keras Conv2D(k×k, in → out)
holds k·k·in·out + out parameters; MaxPool2D, UpSampling2D, ZeroPadding2D and the
activations hold none.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from app.study.probe import make_probe
from worker.training.module import LitPtychoPINN
from worker.training.ptychopinn_net import PtychoPINNNet


def conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout


# (N, per-conv parameters in definition order, encoder output, decoder-base output) for
# gridsize 1 (one input channel, one patch out).
KERAS = {
    64: {
        # encoder filters 2·[32, 64, 128], two convs per Conv_Pool_block
        "encoder": [conv(3, 1, 64), conv(3, 64, 64), conv(3, 64, 128), conv(3, 128, 128),
                    conv(3, 128, 256), conv(3, 256, 256)],
        # decoder base filters 2·[64, 32], two convs per Conv_Up_block
        "base": [conv(3, 256, 128), conv(3, 128, 128), conv(3, 128, 64), conv(3, 64, 64)],
        # conv1 on the first 64 - 4 channels; border Conv_Up_block(4 → 2·2048/64 = 64); conv2
        "head": [conv(3, 60, 1), conv(3, 4, 64), conv(3, 64, 64), conv(3, 64, 1)],
        "encoded": (256, 8, 8),
        "decoded": (64, 32, 32),
        "total": 2_331_772,
    },
    128: {
        "encoder": [conv(3, 1, 32), conv(3, 32, 32), conv(3, 32, 64), conv(3, 64, 64),
                    conv(3, 64, 128), conv(3, 128, 128), conv(3, 128, 256), conv(3, 256, 256)],
        "base": [conv(3, 256, 256), conv(3, 256, 256), conv(3, 256, 128), conv(3, 128, 128),
                 conv(3, 128, 64), conv(3, 64, 64)],
        # border Conv_Up_block width 2·2048/128 = 32
        "head": [conv(3, 60, 1), conv(3, 4, 32), conv(3, 32, 32), conv(3, 32, 1)],
        "encoded": (256, 8, 8),
        "decoded": (64, 64, 64),
        "total": 4_661_212,
    },
}  # fmt: skip


def _conv_counts(module: nn.Module) -> list[int]:
    return [sum(p.numel() for p in m.parameters()) for m in module.modules()
            if isinstance(m, nn.Conv2d)]  # fmt: skip


@pytest.mark.parametrize("n", [64, 128])
def test_layer_parameters_and_total_match_the_keras_definition(n: int) -> None:
    expected = KERAS[n]
    net = PtychoPINNNet(n, channels=1)
    assert _conv_counts(net.encoder) == expected["encoder"]
    for decoder in (net.amplitude, net.phase):
        assert _conv_counts(decoder.base) == expected["base"]
        head = _conv_counts(decoder.centre) + _conv_counts(decoder.border_up)
        assert head + _conv_counts(decoder.border) == expected["head"]
    total = sum(expected["encoder"]) + 2 * (sum(expected["base"]) + sum(expected["head"]))
    assert total == expected["total"]
    assert sum(p.numel() for p in net.parameters()) == expected["total"]


@pytest.mark.parametrize("n", [64, 128])
def test_layer_output_shapes(n: int) -> None:
    expected = KERAS[n]
    net = PtychoPINNNet(n, channels=1)
    x = torch.rand(2, 1, n, n)
    code = net.encoder(x)
    assert tuple(code.shape[1:]) == expected["encoded"]
    assert tuple(net.amplitude.base(code).shape[1:]) == expected["decoded"]
    out = net(x)
    assert out.shape == (2, 1, n, n)
    assert out.dtype == torch.complex64


def test_full_model_counts_the_log_scale_as_trainable_and_the_probe_as_fixed() -> None:
    probe = torch.from_numpy(make_probe(64)).to(torch.complex64)
    model = LitPtychoPINN(
        n=64, gridsize=1, intensity_scale=30.0, probe=probe, architecture="ptychopinn",
        inputs="amplitudes",
    )  # fmt: skip
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # Keras: conv weights + the IntensityScaler's log scale; the probe Variable is not trained.
    assert trainable == KERAS[64]["total"] + 1
    assert model.probe.shape == (64, 64)
    assert not model.probe.requires_grad


def test_gridsize2_takes_four_channels_and_returns_four_patches() -> None:
    net = PtychoPINNNet(64, channels=4)
    out = net(torch.rand(1, 4, 64, 64))
    assert out.shape == (1, 4, 64, 64)
    # Only the first convolution and the two heads' last convolutions see C.
    single = sum(p.numel() for p in PtychoPINNNet(64, channels=1).parameters())
    extra = 3 * 3 * 3 * 64 + 2 * (3 * 3 * 60 * 3 + 3 + 3 * 3 * 64 * 3 + 3)
    assert sum(p.numel() for p in net.parameters()) == single + extra


def test_centre_is_bounded_and_the_border_term_lives_outside_it() -> None:
    torch.manual_seed(0)
    net = PtychoPINNNet(64, channels=1)
    with torch.no_grad():
        code = net.encoder(torch.rand(3, 1, 64, 64))
        amplitude, phase = net.amplitude(code), net.phase(code)
    centre = (slice(None), slice(None), slice(16, 48), slice(16, 48))
    assert float(amplitude[centre].min()) > 0
    assert float(amplitude[centre].max()) < 1
    assert float(phase[centre].abs().max()) < torch.pi
    border = amplitude.clone()
    border[centre] = 0
    # swish is bounded below by about -0.28
    assert float(border.min()) > -0.3
    assert float(border.abs().sum()) > 0


def test_unsupported_size_names_the_alternative() -> None:
    with pytest.raises(ValueError, match="unet"):
        PtychoPINNNet(32, channels=1)
