"""`python -m bench.bench_step` (issue 17): the model's own step and its FLOPs beside the trainer's ms/step, for any
Table 4 architecture; an unknown name is refused in one line."""
import pytest

from bench import bench_step
from pretrain.config import get_config, target_config


def test_the_models_own_step_and_flops():
    tcfg = target_config(get_config("mini"), "resnet50", "original", 0).replace(batch_size=4)
    ms, gflop = bench_step._model_ms(tcfg, steps=2, warmup=1)
    assert ms > 0
    # the mini ResNet-50 at 48 px: 6.19 GFLOP fwd+bwd at batch 128, linear in the batch
    assert gflop == pytest.approx(6.19 * 4 / 128, rel=0.01)


def test_an_unknown_model_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        bench_step.main(["--models", "resnet50", "vgg16"])
    assert e.value.code == 2 and "unknown model vgg16; known: resnet50" in capsys.readouterr().err


def test_a_bad_bf16_switch_is_refused_before_any_work(capsys, monkeypatch):
    monkeypatch.setenv("RELABEL_CPU_BF16", "maybe")
    monkeypatch.setattr("pretrain.artifacts.train_samples", lambda cfg: pytest.fail("built the world first"))
    with pytest.raises(SystemExit) as e:
        bench_step.main([])
    assert e.value.code == 2 and "RELABEL_CPU_BF16 must be auto, 0 or 1, got 'maybe'" in capsys.readouterr().err
