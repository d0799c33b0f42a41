"""HRNet heatmap model (tiny CPU variant), its loss, and pretrained-weight loading in both layouts."""

import logging
import re

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from motion_keypoints.models.heatmap import model as hm_model  # noqa: E402
from motion_keypoints.models.heatmap import weights  # noqa: E402

try:
    from motion_keypoints.meta import KEYPOINT_NAMES, NUM_KEYPOINTS
except ImportError:
    from motion_keypoints.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

TINY = ("hrnet_w18_small", hm_model.TINY_BACKBONE_KWARGS)
N_COCO = len(weights.COCO_KEYPOINT_NAMES)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return hm_model.HRNetHeatmapModel(NUM_KEYPOINTS, TINY[0], dict(TINY[1])).eval()


def _randomised(state):
    """Distinct random values, so a tensor landing in the wrong parameter is noticed."""
    g = torch.Generator().manual_seed(1)
    return {
        k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
        for k, v in state.items()
    }


def test_forward_shape_stride_and_channels(tiny):
    assert tiny.backbone.feature_info.reduction() == [hm_model.OUTPUT_STRIDE]
    assert tiny.feature_channels == 16  # hrnet_w18_small's high-resolution branch
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        out = tiny(x)
    assert out.shape == (2, NUM_KEYPOINTS, 128 // 4, 96 // 4)
    assert hm_model.HRNetHeatmapModel.heatmap_size((96, 128)) == (24, 32)
    with pytest.raises(ValueError):
        hm_model.HRNetHeatmapModel.heatmap_size((100, 128))


def test_pruning_keeps_the_output_and_the_official_layout():
    torch.manual_seed(0)
    full = hm_model.HRNetHeatmapModel(5, TINY[0], dict(TINY[1]), prune_unused=False).eval()
    pruned = hm_model.HRNetHeatmapModel(5, TINY[0], dict(TINY[1]), prune_unused=True).eval()
    extra = set(full.state_dict()) - set(pruned.state_dict())
    assert extra and all(re.match(r"backbone\.stage4\.0\.fuse_layers\.[123]\.", k) for k in extra)
    assert not set(pruned.state_dict()) - set(full.state_dict())
    pruned.load_state_dict({k: v for k, v in full.state_dict().items() if k not in extra})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), full(x))


def test_head_convs_option():
    m = hm_model.HRNetHeatmapModel(3, TINY[0], dict(TINY[1]), head_convs=1, head_channels=8)
    assert isinstance(m.head_convs[0], torch.nn.Conv2d) and m.head_convs[0].out_channels == 8
    assert m.final_conv.in_channels == 8
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 3, 16, 16)


def test_loss_weights_ohkm_and_backward(tiny):
    target = torch.rand(2, 4, 8, 6)
    pred = target.clone()
    assert hm_model.heatmap_loss(pred, target).item() == 0.0
    pred[:, 0] += 1.0  # keypoint 0 wrong by 1 everywhere
    assert hm_model.heatmap_loss(pred, target).item() == pytest.approx(0.5 / 4)
    w = torch.ones(2, 4)
    w[:, 0] = 0
    assert hm_model.heatmap_loss(pred, target, w).item() == 0.0
    assert hm_model.heatmap_loss(pred, target, ohkm_topk=1).item() == pytest.approx(0.5)
    assert hm_model.HeatmapLoss(ohkm_topk=2)(pred, target).item() == pytest.approx(0.25)
    x = torch.randn(2, 3, 64, 64)
    tiny.train()
    out = tiny(x)
    hm_model.heatmap_loss(out, torch.zeros_like(out), torch.ones(out.shape[:2])).backward()
    tiny.eval()
    assert tiny.final_conv.weight.grad is not None
    assert all(p.grad is not None for p in tiny.backbone.parameters())  # no unused parameters


def test_first_keypoints_are_coco():
    assert tuple(KEYPOINT_NAMES[:N_COCO]) == weights.COCO_KEYPOINT_NAMES
    for name, nbrs in weights.NEIGHBOUR_INIT.items():
        assert name in KEYPOINT_NAMES and set(nbrs) <= set(weights.COCO_KEYPOINT_NAMES)
    assert set(KEYPOINT_NAMES) == set(weights.COCO_KEYPOINT_NAMES) | set(weights.NEIGHBOUR_INIT)


def _timm_imagenet_state():
    """A timm ImageNet-layout checkpoint (classification model, same arch as the tiny model)."""
    full = timm.create_model(TINY[0], pretrained=False, num_classes=10, **dict(TINY[1]))
    return _randomised(full.state_dict())


def test_load_timm_imagenet_checkpoint(tiny, caplog):
    state = _timm_imagenet_state()
    model = hm_model.HRNetHeatmapModel(NUM_KEYPOINTS, TINY[0], dict(TINY[1]))
    head_before = model.final_conv.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger=weights.__name__):
        s = weights.load_pretrained(model, state, KEYPOINT_NAMES)
    ours = model.state_dict()
    backbone_keys = [k for k in ours if k.startswith("backbone.")]
    assert len(s.matched) == len(backbone_keys)  # every backbone tensor came from the checkpoint
    assert s.missing == ["final_conv.weight", "final_conv.bias"] and s.head_source is None
    assert "classifier.weight" in s.unexpected and "incre_modules.0.0.conv1.weight" in s.unexpected
    assert "final_layer.0.weight" in s.unexpected  # timm's 2048-channel classification conv
    assert any(k.startswith("stage4.0.fuse_layers.1.") for k in s.unexpected)
    for key in ("conv1.weight", "layer1.0.bn1.running_mean", "stage4.0.branches.3.1.conv2.weight",
                "stage4.0.fuse_layers.0.3.0.weight", "transition3.3.0.0.weight"):
        torch.testing.assert_close(ours["backbone." + key], state[key])
    torch.testing.assert_close(model.final_conv.weight, head_before)
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage() == s.line
    assert s.line.startswith(f"loaded {len(s.matched)} matched, 2 missing, ")


def _official_pose_state(model, channels):
    """The official pose_hrnet layout: timm's backbone keys without the classification head and
    without the last module's fuse rows 1-3, plus final_layer [17, C, 1, 1], under `module.`."""
    state = _timm_imagenet_state()
    last = len(model.backbone.stage4) - 1
    drop = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
    pose = {
        k: v for k, v in state.items()
        if not k.startswith(drop) and not re.match(rf"stage4\.{last}\.fuse_layers\.[123]\.", k)
    }
    g = torch.Generator().manual_seed(2)
    pose["final_layer.weight"] = torch.randn(N_COCO, channels, 1, 1, generator=g)
    pose["final_layer.bias"] = torch.randn(N_COCO, generator=g)
    return {"module." + k: v for k, v in pose.items()}


def test_load_official_pose_checkpoint_with_head_transfer(tmp_path, caplog):
    model = hm_model.HRNetHeatmapModel(NUM_KEYPOINTS, TINY[0], dict(TINY[1]))
    pose = _official_pose_state(model, model.feature_channels)
    pose["module.something.unrelated"] = torch.zeros(3)
    path = tmp_path / "pose_hrnet_tiny.pth"
    torch.save(pose, path)
    with caplog.at_level(logging.INFO, logger=weights.__name__):
        s = weights.load_pretrained(model, path, KEYPOINT_NAMES)
    assert s.unexpected == ["something.unrelated"] and s.missing == [] and not s.mismatched
    assert s.line == (
        f"loaded {len(pose) - 1} matched, 0 missing, 1 unexpected keys from {path} "
        f"(head: {N_COCO} COCO channels copied, {NUM_KEYPOINTS - N_COCO} initialised from neighbours)"
    )
    assert [r.getMessage() for r in caplog.records] == [s.line]
    ours = model.state_dict()
    torch.testing.assert_close(ours["backbone.stage2.0.branches.1.0.conv1.weight"],
                               pose["module.stage2.0.branches.1.0.conv1.weight"])
    w, b = pose["module.final_layer.weight"], pose["module.final_layer.bias"]
    fw, fb = model.final_conv.weight.detach(), model.final_conv.bias.detach()
    torch.testing.assert_close(fw[:N_COCO], w)
    torch.testing.assert_close(fb[:N_COCO], b)

    def idx(name):
        return KEYPOINT_NAMES.index(name)

    def coco(name):
        return weights.COCO_KEYPOINT_NAMES.index(name)

    torch.testing.assert_close(
        fw[idx("neck")], (w[coco("left_shoulder")] + w[coco("right_shoulder")]) / 2
    )
    torch.testing.assert_close(fb[idx("spine1(waist)")],
                               (b[coco("left_hip")] + b[coco("right_hip")]) / 2)
    torch.testing.assert_close(fw[idx("left_palm")], w[coco("left_wrist")])
    torch.testing.assert_close(fw[idx("right_instep")], w[coco("right_ankle")])
    torch.testing.assert_close(fw[idx("spine2(back)")], w[[5, 6, 11, 12]].mean(0))


def test_head_width_mismatch_is_reported_not_loaded():
    model = hm_model.HRNetHeatmapModel(NUM_KEYPOINTS, TINY[0], dict(TINY[1]),
                                       head_convs=1, head_channels=8)
    pose = _official_pose_state(model, model.feature_channels)  # head expects 8 channels in
    before = model.final_conv.weight.detach().clone()
    s = weights.load_pretrained(model, pose, KEYPOINT_NAMES)
    assert s.mismatched == ["final_layer.weight", "final_layer.bias"]
    assert "shape-mismatched" in s.line
    torch.testing.assert_close(model.final_conv.weight, before)


def test_transfer_for_keypoint_rcnn_predictor_layout():
    """detectron2's ConvTranspose2d predictor is [C, K, 4, 4]: the keypoint axis is 1."""
    src = torch.randn(8, N_COCO, 4, 4)
    out, copied, neigh, kept = weights.transfer_keypoint_channels(src, KEYPOINT_NAMES, axis=1)
    assert out.shape == (8, NUM_KEYPOINTS, 4, 4)
    assert len(copied) == N_COCO and len(neigh) == NUM_KEYPOINTS - N_COCO and not kept
    torch.testing.assert_close(out[:, :N_COCO], src)
    torch.testing.assert_close(out[:, KEYPOINT_NAMES.index("left_instep")], src[:, 15])
    with pytest.raises(ValueError):
        weights.transfer_keypoint_channels(src, KEYPOINT_NAMES, axis=0)
