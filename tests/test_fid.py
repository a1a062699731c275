"""FID and KID (imgan.fid, imgan eval --generated): our numbers against the reference implementations on
the same random weights, statistics files, the classifier extractor, and the offline message.

pytorch-fid is a dependency (its FID Inception blocks are imgan's network); torch-fidelity, the
reference for KID, is a test dependency and those tests skip without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from imgan import fid
from imgan.archs.classifier import GlyphClassifier
from imgan.archs.inception import FIDInception
from imgan.cli import app

runner = CliRunner()


def write_images(folder: Path, count: int, *, seed: int, size: int = 32) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        base = rng.integers(0, 256, 3)
        noise = rng.integers(-40, 40, (size, size, 3))
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(folder / f"{index:03d}.png")
    return folder


@pytest.fixture(scope="module")
def random_inception() -> dict[str, torch.Tensor]:
    """A state dict in the layout of pt_inception-2015-12-05-6726825d.pth, with random weights."""
    torch.manual_seed(0)
    return FIDInception().network.state_dict()


def test_features_equal_pytorch_fids_network_on_the_same_random_weights(
        random_inception: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch) -> None:
    import pytorch_fid.inception

    monkeypatch.setattr(pytorch_fid.inception, "load_state_dict_from_url", lambda *a, **k: random_inception)
    reference = pytorch_fid.inception.InceptionV3([3], resize_input=False, normalize_input=True).eval()
    # At 75 px (Inception's smallest input), where neither resizes; at 299 px both resize the same way.
    ours = FIDInception(input_size=75).eval()
    ours.load_weights(random_inception)
    images = torch.rand(2, 3, 75, 75, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(images)[0].flatten(1)
        assert torch.allclose(ours(images), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")
def test_fid_equals_pytorch_fids_on_the_same_features() -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(3)
    first, second = rng.normal(size=(300, 16)), rng.normal(0.2, 1.3, size=(250, 16)) @ rng.normal(size=(16, 16))
    one, two = fid.FeatureSet.of(first, extractor="x"), fid.FeatureSet.of(second, extractor="x")
    reference = calculate_frechet_distance(one.mu, one.sigma, two.mu, two.sigma)
    assert fid.frechet_distance(one.mu, one.sigma, two.mu, two.sigma) == pytest.approx(reference, rel=1e-9)


def test_folder_features_are_the_networks_features_of_the_8_bit_images(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "images", 3, seed=9)
    torch.manual_seed(0)
    network = _features(GlyphClassifier())
    extractor = fid.Extractor(name="glyphs", network=network, device=torch.device("cpu"))
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255).permute(2, 0, 1)
                          for path in sorted(folder.glob("*.png"))])
    with torch.no_grad():
        expected = network(images).double().numpy()
    assert np.allclose(fid.folder_features(folder, extractor), expected, rtol=1e-6, atol=1e-7)


def test_kid_equals_torch_fidelitys_on_the_same_features() -> None:
    metric_kid = pytest.importorskip("torch_fidelity.metric_kid")
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(120, 32)), rng.normal(0.3, 1.2, size=(90, 32))
    reference = metric_kid.kid_features_to_metric(torch.from_numpy(first), torch.from_numpy(second), kid_subsets=20,
                                                  kid_subset_size=50, verbose=False, rng_seed=7)
    mean, std = fid.kernel_distance(first, second, subsets=20, subset_size=50, seed=7)
    assert mean == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-9)
    assert std == pytest.approx(reference["kernel_inception_distance_std"], rel=1e-9)


def test_identical_sets_are_at_distance_zero_and_a_shift_is_its_squared_length() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(400, 8))
    stats = fid.FeatureSet.of(features, extractor="x")
    assert fid.frechet_distance(stats.mu, stats.sigma, stats.mu, stats.sigma) == pytest.approx(0.0, abs=1e-8)
    shifted = fid.FeatureSet.of(features + 2.0, extractor="x")
    assert fid.frechet_distance(stats.mu, stats.sigma, shifted.mu, shifted.sigma) == pytest.approx(8 * 4.0)


def test_saved_statistics_give_the_same_fid_as_the_folder(tmp_path: Path) -> None:
    generated, real = write_images(tmp_path / "g", 6, seed=3), write_images(tmp_path / "r", 8, seed=4)
    torch.manual_seed(0)
    extractor = fid.Extractor(name="glyphs", network=_features(GlyphClassifier()), device=torch.device("cpu"))
    stats = tmp_path / "real.npz"
    direct = fid.compare(str(generated), str(real), extractor=extractor, save=str(stats))
    again = fid.compare(str(generated), str(stats), extractor=extractor)
    assert again["fid"] == pytest.approx(direct["fid"], rel=1e-9)
    assert again["kid"] == pytest.approx(direct["kid"], rel=1e-5)  # features are stored as float32
    with pytest.raises(Exception, match="statistics of glyphs features"):
        fid.compare(str(generated), str(stats), extractor=fid.Extractor(name="inception-v3-fid",
                                                                       network=extractor.network,
                                                                       device=torch.device("cpu")))


def test_a_pytorch_fid_statistics_file_is_read_and_kid_is_left_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "pytorch_fid.npz"
    np.savez_compressed(path, mu=rng.normal(size=4), sigma=np.eye(4))
    loaded = fid.load_stats(path, extractor="inception-v3-fid")
    assert loaded.features is None and loaded.mu.shape == (4,)


def _features(classifier: GlyphClassifier) -> torch.nn.Module:
    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.classifier.features(images)

    return Features().eval()


def test_eval_scores_folders_with_a_classifier_file_as_the_extractor(tmp_path: Path) -> None:
    generated, real = write_images(tmp_path / "g", 6, seed=5), write_images(tmp_path / "r", 7, seed=6)
    torch.manual_seed(0)
    path = tmp_path / "glyphs.safetensors"
    save_file(GlyphClassifier(num_features=8, feature_size=16).state_dict(), str(path),
              metadata={"network": "glyph-classifier", "params": json.dumps({"num_features": 8, "feature_size": 16})})
    result = runner.invoke(app, ["eval", "--generated", str(generated), "--real", str(real), "--features", str(path),
                                 "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["features"] == "glyphs" and record["generated_count"] == 6 and record["real_count"] == 7
    assert record["fid"] > 0 and "kid" in record


def test_offline_without_the_inception_weights_names_the_download(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    generated, real = write_images(tmp_path / "g", 2, seed=7), write_images(tmp_path / "r", 2, seed=8)
    result = runner.invoke(app, ["eval", "--generated", str(generated), "--real", str(real)])
    assert result.exit_code == 1
    assert "pt_inception-2015-12-05-6726825d.pth" in result.stderr and "IMGAN_OFFLINE" in result.stderr


def test_eval_needs_real_and_something_to_do(tmp_path: Path) -> None:
    assert runner.invoke(app, ["eval", "--generated", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["eval", "--real", str(tmp_path)]).exit_code == 2
    result = runner.invoke(app, ["eval", "--generated", str(tmp_path), "--real", str(tmp_path), "--pred", "x"])
    assert result.exit_code == 2
