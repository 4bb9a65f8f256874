"""Tests for the model zoo (rsdgc_sim.models)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rsdgc_sim.errors import ConfigError, UnknownNameError
from rsdgc_sim.models import MODELS, count_parameters, create, describe, min_input_size

# torchvision's published parameter counts at 1000 classes.
TORCHVISION_1000 = {
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
}
# in_features of the last linear layer
LAST_IN = {n: 4096 for n in TORCHVISION_1000 if n.startswith("vgg")} | {
    "resnet18": 512, "resnet34": 512, "resnet50": 2048,
}  # fmt: skip

VGG_CONVS = {  # 3x3 conv widths per stage
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3],
    19: [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


def vgg_count(depth: int, bn: bool, classes: int) -> int:
    """VGG parameter count by arithmetic: 3x3 convs with bias (+2 per channel with BN)."""
    total, c = 0, 3
    for stage in VGG_CONVS[depth]:
        for w in stage:
            total += 9 * c * w + w + (2 * w if bn else 0)
            c = w
    return total + (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * classes + classes)


def resnet_count(depth: int, classes: int) -> int:
    """ResNet parameter count by arithmetic: bias-free convs, 2 params per BN channel."""
    bottleneck = depth == 50
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}[depth]
    exp = 4 if bottleneck else 1
    total = 3 * 64 * 49 + 2 * 64
    c = 64
    for i, (planes, n) in enumerate(zip([64, 128, 256, 512], blocks, strict=True)):
        for b in range(n):
            out = planes * exp
            if bottleneck:
                total += c * planes + 9 * planes * planes + planes * out + 2 * (2 * planes + out)
            else:
                total += 9 * c * planes + 9 * planes * planes + 2 * 2 * planes
            if b == 0 and (i > 0 or c != out):
                total += c * out + 2 * out
            c = out
    return total + c * classes + classes


def test_registry_lists_every_zoo_model():
    """MODELS holds exactly the documented zoo, each with one line of help."""
    assert MODELS.names() == sorted(["cnn_small", *TORCHVISION_1000])
    for name in MODELS:
        text = describe(name)
        assert text and "\n" not in text


@pytest.mark.parametrize("name", sorted(TORCHVISION_1000))
@pytest.mark.parametrize("classes", [1000, 45])
def test_parameter_count_matches_torchvision(name, classes):
    """Parameter count equals torchvision's (published table at 1000 classes; last layer
    shrunk by (1000 - classes) * (in_features + 1) otherwise) and our own arithmetic."""
    expected = TORCHVISION_1000[name] - (1000 - classes) * (LAST_IN[name] + 1)
    depth = int(name.removeprefix("vgg").removeprefix("resnet").removesuffix("_bn"))
    arith = (
        vgg_count(depth, name.endswith("_bn"), classes)
        if name.startswith("vgg")
        else resnet_count(depth, classes)
    )
    assert arith == expected
    model = create(name, num_classes=classes, device="meta")
    assert count_parameters(model) == expected


def test_parameter_count_quoted_examples():
    """The two numbers quoted in the brief: vgg19_bn@45 and resnet18@1000."""
    assert count_parameters(create("vgg19_bn", 45, device="meta")) == 139_765_613
    assert count_parameters(create("resnet18", 1000, device="meta")) == 11_689_512


def test_cnn_small_count_by_arithmetic():
    """cnn_small: convs 3->16->32->64 with bias, BN on the first two, linear 64->classes."""
    convs = (27 * 16 + 16) + (144 * 32 + 32) + (288 * 64 + 64)
    for classes in (10, 45):
        expected = convs + 2 * 16 + 2 * 32 + 64 * classes + classes
        assert count_parameters(create("cnn_small", classes, device="meta")) == expected
    assert 10_000 < count_parameters(create("cnn_small", 45, device="meta")) < 100_000


def test_count_parameters_trainable_only():
    """trainable_only leaves out parameters with requires_grad=False."""
    model = create("cnn_small", 45, device="meta")
    model.classifier.requires_grad_(False)
    full = count_parameters(model)
    assert count_parameters(model, trainable_only=True) == full - (64 * 45 + 45)


def test_parameter_names_follow_torchvision():
    """Parameter names are torchvision's (features.N / classifier.N, layerX.Y.convZ, fc)."""
    names = dict(create("resnet18", 1000, device="meta").named_parameters())
    assert len(names) == 62  # torchvision resnet18 has 62 parameter tensors
    for key in ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight",
                "layer1.1.bn2.bias", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.weight", "layer4.1.conv2.weight", "fc.weight",
                "fc.bias"]:  # fmt: skip
        assert key in names, key
    assert "layer1.0.downsample.0.weight" not in names
    assert tuple(names["layer2.0.conv1.weight"].shape) == (128, 64, 3, 3)

    r50 = dict(create("resnet50", 1000, device="meta").named_parameters())
    assert tuple(r50["layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)
    assert tuple(r50["layer2.0.conv2.weight"].shape) == (128, 128, 3, 3)  # stride on 3x3
    assert tuple(r50["layer4.2.conv3.weight"].shape) == (2048, 512, 1, 1)
    assert create("resnet50", device="meta").layer2[0].conv2.stride == (2, 2)
    assert create("resnet50", device="meta").layer2[0].conv1.stride == (1, 1)
    assert tuple(r50["fc.weight"].shape) == (1000, 2048)

    v16 = dict(create("vgg16", 1000, device="meta").named_parameters())
    assert tuple(v16["features.0.weight"].shape) == (64, 3, 3, 3)
    assert tuple(v16["features.28.weight"].shape) == (512, 512, 3, 3)
    assert tuple(v16["classifier.0.weight"].shape) == (4096, 25088)
    assert tuple(v16["classifier.6.bias"].shape) == (1000,)
    v19bn = dict(create("vgg19_bn", 45, device="meta").named_parameters())
    assert tuple(v19bn["features.49.weight"].shape) == (512, 512, 3, 3)
    assert tuple(v19bn["features.50.weight"].shape) == (512,)


@pytest.mark.parametrize("name", MODELS.names())
def test_forward_shape_at_min_input_on_meta(name):
    """Every model maps a [B, 3, s, s] batch at its minimum size to [B, num_classes]
    (checked on the meta device: shapes only, no memory)."""
    s = min_input_size(name)
    model = create(name, 7, s, device="meta").eval()
    out = model(torch.empty(2, 3, s, s, device="meta"))
    assert tuple(out.shape) == (2, 7)


@pytest.mark.parametrize("name,size", [("cnn_small", 8), ("cnn_small", 33), ("resnet18", 32)])
def test_forward_real(name, size):
    """A real CPU forward pass gives finite logits of shape [B, num_classes]; backward fills
    every parameter's gradient."""
    model = create(name, num_classes=45, input_size=size, seed=0)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert out.shape == (3, 45)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_in_channels():
    """in_channels changes only the first conv (e.g. multispectral RS imagery)."""
    m = create("resnet18", 45, in_channels=4, device="meta")
    assert tuple(m.conv1.weight.shape) == (64, 4, 7, 7)
    diff = count_parameters(m) - count_parameters(create("resnet18", 45, device="meta"))
    assert diff == 64 * 49


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["cnn_small", "resnet18"])
def test_same_seed_same_weights(name):
    """The same seed gives identical weights; a different seed different ones; a generator
    seeded the same way equals the seed; the global RNG is neither read nor advanced."""
    before = torch.get_rng_state()
    a = _state(create(name, seed=123))
    b = _state(create(name, seed=123))
    c = _state(create(name, generator=torch.Generator().manual_seed(123)))
    d = _state(create(name, seed=124))
    assert torch.equal(torch.get_rng_state(), before)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
    assert not torch.equal(a["fc.weight" if name == "resnet18" else "classifier.weight"],
                           d["fc.weight" if name == "resnet18" else "classifier.weight"])


def test_no_seed_uses_global_rng():
    """With neither seed nor generator, weights come from the global RNG (as torch does)."""
    with torch.random.fork_rng():
        torch.manual_seed(7)
        a = _state(create("cnn_small"))
        torch.manual_seed(7)
        b = _state(create("cnn_small"))
        c = _state(create("cnn_small"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])


def test_initialisation_follows_torchvision():
    """Convs are Kaiming-normal fan-out (std sqrt(2/fan_out)), conv biases zero, BN weight 1,
    bias 0, running stats reset; ResNet fc is PyTorch's default U(+-1/sqrt(fan_in))."""
    m = create("resnet18", 45, 32, seed=0)
    w = m.conv1.weight  # 64*3*49 = 9408 samples
    assert w.mean().abs() < 0.003
    assert w.std().item() == pytest.approx(math.sqrt(2 / (64 * 49)), rel=0.05)
    w = m.layer3[0].conv2.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.02)
    for bn in [m.bn1, m.layer2[0].downsample[1]]:
        assert torch.equal(bn.weight, torch.ones_like(bn.weight))
        assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
        assert bn.num_batches_tracked.item() == 0
    bound = 1 / math.sqrt(512)
    assert m.fc.weight.abs().max() <= bound and m.fc.bias.abs().max() <= bound
    assert m.fc.weight.abs().max() > 0.9 * bound
    s = create("cnn_small", 45, seed=0)
    assert torch.equal(s.features[0].bias, torch.zeros(16))


@pytest.mark.slow
def test_vgg_initialisation_follows_torchvision():
    """VGG linears are N(0, 0.01) with zero bias; convs Kaiming fan-out with zero bias."""
    m = create("vgg11", 45, 32, seed=0)
    assert m.classifier[3].weight.std().item() == pytest.approx(0.01, rel=0.01)
    assert torch.equal(m.classifier[6].bias, torch.zeros(45))
    assert m.features[0].weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.1)
    assert torch.equal(m.features[0].bias, torch.zeros(64))


def test_unknown_name_lists_choices():
    """An unknown model name raises UnknownNameError listing the choices."""
    with pytest.raises(UnknownNameError, match=r"unknown model 'vgg20'; choose one of: .*resnet50"):
        create("vgg20")
    with pytest.raises(UnknownNameError, match="cnn_small"):
        describe("nope")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "resnet18", "num_classes": 0}, r"num_classes=0 is too small .*need >= 1"),
        ({"name": "cnn_small", "num_classes": -3}, r"num_classes=-3"),
        ({"name": "cnn_small", "num_classes": 2.5}, r"num_classes must be an integer, got 2.5"),
        ({"name": "cnn_small", "num_classes": True}, r"num_classes must be an integer"),
        ({"name": "resnet18", "input_size": 31}, r"input_size=31 is too small .*resnet18.*>= 32"),
        ({"name": "vgg19", "input_size": 16}, r"input_size=16 is too small .*vgg19.*>= 32"),
        ({"name": "cnn_small", "input_size": 7}, r"input_size=7 .*>= 8"),
        ({"name": "cnn_small", "in_channels": 0}, r"in_channels=0"),
        ({"name": "cnn_small", "seed": -1}, r"seed=-1"),
        ({"name": "cnn_small", "seed": 1, "generator": torch.Generator()}, r"either seed or"),
        ({"name": "cnn_small", "generator": 5}, r"must be a torch.Generator, got int"),
        ({"name": "cnn_small", "device": "toaster"}, r"invalid device 'toaster'"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, match):
    """Bad arguments raise ConfigError naming the field and the bad value."""
    with pytest.raises(ConfigError, match=match):
        create(**kwargs)


def test_vgg_min_input_is_needed():
    """Below 32 px VGG's five max-pools reach zero size, which is why 32 is the minimum."""
    from rsdgc_sim.models.vgg import vgg

    with torch.device("meta"):
        model = vgg(11, False, 10)
    with pytest.raises(RuntimeError):
        model(torch.empty(1, 3, 31, 31, device="meta"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_same_weights_as_cpu():
    """A seeded model created on CUDA holds the same weights as on CPU."""
    a = create("resnet18", seed=3)
    b = create("resnet18", seed=3, device="cuda")
    assert next(b.parameters()).is_cuda
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb.cpu())


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_runs_downsample_after_main_path(name):
    """torchvision's blocks run the shortcut's downsample after the main path (conv1 ...
    bn2/bn3): forward order, and so the gradient-ready order DDP rebuilds its buckets in,
    matches torchvision's."""
    net = create(name, num_classes=10, input_size=32, seed=0)
    order: list[str] = []
    for n, m in net.named_modules():
        if n.startswith("layer2.0.") and n.count(".") == 2:
            m.register_forward_hook(lambda _m, _i, _o, n=n: order.append(n))
    net.eval()(torch.zeros(1, 3, 32, 32))
    last = "layer2.0.bn3" if name == "resnet50" else "layer2.0.bn2"
    assert order.index("layer2.0.conv1") < order.index(last) < order.index("layer2.0.downsample")
