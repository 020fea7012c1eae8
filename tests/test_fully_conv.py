"""Machine annotator: the label map's spatial mean is the model's logits (Appendix B), and clear refusals."""
import pytest
import timm
import torch
from PIL import Image

from relabel.fully_conv import NotFullyConvolutional, annotation_transform, label_map, topk_label_map

# Tiny members of each family (timm.create_model, random init, never pretrained weights).
FAMILIES = {
    "resnet": ("test_resnet", {}),
    "efficientnet": ("test_efficientnet", {}),
    "efficientnet_tf_same_pad": ("tf_efficientnet_b0", {}),  # the official annotator's (L2) padding family
    "rexnet": ("rexnet_100", {"width_mult": 0.5, "depth_mult": 0.34}),
}


def build(name, kwargs, num_classes=10):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    fc = model.get_classifier()
    with torch.no_grad():  # random init gives near-zero, near-constant logits; give the check some teeth
        fc.weight.normal_(0.0, fc.weight.shape[1] ** -0.5)
        fc.bias.normal_(0.0, 1.0)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_spatial_mean_of_label_map_equals_logits(family):
    model = build(*FAMILIES[family])
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        maps = label_map(model, x)
        logits = model(x)
    assert maps.shape == (2, 10, 3, 3)
    assert logits.abs().max() > 0.5
    assert torch.allclose(maps.mean((2, 3)), logits, atol=1e-5, rtol=1e-5)
    assert maps.std((2, 3)).mean() > 1e-3  # genuinely varies over locations


@pytest.mark.parametrize("name, kwargs, why", [
    ("mobilenetv3_small_050", {}, "classifier takes"),                  # conv_head + act after pooling
    ("test_convnext", {}, "not 'global average pool → linear'"),        # LayerNorm after pooling
    ("test_resnet", {"global_pool": "max"}, "not 'global average pool → linear'"),
    ("test_vit", {}, "not a \\[B, D, h, w\\] feature map"),              # tokens
])
def test_heads_without_a_per_location_reading_are_refused(name, kwargs, why):
    model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
    with pytest.raises(NotFullyConvolutional, match=why):
        label_map(model, torch.randn(1, 3, 64, 64))


def test_headless_and_training_models_are_refused():
    model = timm.create_model("test_resnet", pretrained=False, num_classes=0).eval()
    with pytest.raises(NotFullyConvolutional, match="num_classes > 0"):
        label_map(model, torch.randn(1, 3, 64, 64))
    with pytest.raises(RuntimeError, match="eval mode"):
        label_map(build("test_resnet", {}).train(), torch.randn(1, 3, 64, 64))


def test_topk_is_best_first_per_location():
    maps = torch.randn(2, 20, 4, 5)
    scores, idx = topk_label_map(maps, 5)
    assert scores.shape == idx.shape == (2, 5, 4, 5)
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    assert torch.equal(torch.gather(maps, 1, idx), scores)
    assert torch.equal(idx[:, 0], maps.argmax(1))
    with pytest.raises(ValueError, match="between 1 and"):
        topk_label_map(maps, 21)


def test_annotation_transform_resizes_the_whole_image_without_crop():
    model = build("test_efficientnet", {})
    t = annotation_transform(model, input_size=48)
    img = Image.new("RGB", (100, 30), (255, 0, 0))
    img.paste((0, 0, 255), (90, 0, 100, 30))  # a blue strip at the far right must survive: no crop
    x = t(img)
    assert x.shape == (3, 48, 48)
    assert x[2, :, -1].mean() > x[2, :, 0].mean() + 1.0
