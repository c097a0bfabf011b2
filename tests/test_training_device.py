"""training.device / training.precision: a clear error for CUDA without a GPU,
bf16 autocast on CPU trains with an fp32 loss, fp32 results unchanged by the
device code, and checkpoints load on the CPU (map_location)."""
import pytest
import torch
import yaml

from pyutils.training import checkpoint
from pyutils.training.device import autocast, resolve_device
from pyutils.training.trainer import train
from tests.test_training import make_training_data, write_config


def set_training(config, **keys):
    cfg = yaml.safe_load(config.read_text())
    cfg["training"].update(keys)
    config.write_text(yaml.safe_dump(cfg))


def test_device_names():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is available"):
            resolve_device("cuda:1")
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        autocast(torch.device("cpu"), "fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast(torch.device("cpu"), "fp8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_config_without_gpu_is_a_clear_error(tmp_path):
    make_training_data(tmp_path)
    config = tmp_path / "c.yaml"
    write_config(config, epochs=1)
    set_training(config, device="cuda")
    with pytest.raises(ValueError, match="no CUDA device"):
        train(str(config), str(tmp_path), str(tmp_path / "exp"))


def test_bf16_on_cpu_trains_with_fp32_loss_and_loads_on_cpu(tmp_path):
    make_training_data(tmp_path)
    fp32, bf16 = tmp_path / "fp32.yaml", tmp_path / "bf16.yaml"
    write_config(fp32, epochs=2)
    write_config(bf16, epochs=2)
    set_training(fp32, device="cpu")
    set_training(bf16, device="cpu", precision="bf16")
    train(str(fp32), str(tmp_path), str(tmp_path / "a"))
    train(str(bf16), str(tmp_path), str(tmp_path / "b"))
    stats = [checkpoint.load(str(tmp_path / run / "models" / "epoch_2.pt"))["stats"]
             for run in ("a", "b")]
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in stats)
    # bf16 rounds activations (~3 significant digits): the first step (same weights, same
    # batch) is close to fp32, not equal; later steps drift apart as SGD trajectories do
    first = [checkpoint.load(str(tmp_path / run / "models" / "epoch_1.pt"))["stats"]
             ["step_losses"][0] for run in ("a", "b")]
    assert first[0] != first[1] and abs(first[0] - first[1]) < 1e-2 * first[0]
    assert stats[0]["loss"] != stats[1]["loss"]
    assert abs(stats[0]["loss"] - stats[1]["loss"]) < 0.25 * stats[0]["loss"]
    final = torch.load(tmp_path / "b" / "final.pt", map_location="cpu", weights_only=False)
    assert all(v.device.type == "cpu" and v.dtype != torch.bfloat16
               for v in final["model"].values())


def test_extraction_device_option(tmp_path):
    from pyutils.extraction.extract import load_embedding_model
    make_training_data(tmp_path)
    config = tmp_path / "c.yaml"
    write_config(config, epochs=1)
    train(str(config), str(tmp_path), str(tmp_path / "exp"))
    model = load_embedding_model(str(tmp_path / "exp" / "final.pt"), "cpu")
    assert next(model.parameters()).device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            load_embedding_model(str(tmp_path / "exp" / "final.pt"), "cuda")


def test_grad_scaler_step_matches_the_unscaled_step_and_skips_non_finite_ones():
    """The fp16 path's GradScaler code in train_step (scale, unscale for clipping, step,
    update), run on CPU: a power-of-two scale changes nothing; a step with non-finite
    gradients is skipped and the scale halves (as torch.amp documents)."""
    from pyutils.training.loop import train_step

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x, y):
            logits = self.lin(x)
            return torch.nn.functional.cross_entropy(logits, y), logits

    torch.manual_seed(0)
    nets = [Net(), Net()]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [torch.optim.SGD(n.parameters(), lr=0.1) for n in nets]
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda step: 1.0) for o in opts]
    scaler = torch.amp.GradScaler("cpu")
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    for _ in range(3):
        train_step(nets[0], None, opts[0], scheds[0], x, y, grad_clip=0.5)
        train_step(nets[1], None, opts[1], scheds[1], x, y, grad_clip=0.5, scaler=scaler)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    assert scaler.get_scale() == 2.0 ** 16
    before = [p.detach().clone() for p in nets[1].parameters()]
    bad = x.clone()
    bad[0, 0] = float("inf")
    train_step(nets[1], None, opts[1], scheds[1], bad, y, grad_clip=0.5, scaler=scaler)
    assert all(torch.equal(p, q) for p, q in zip(nets[1].parameters(), before))
    assert scaler.get_scale() == 2.0 ** 15
