"""Training options: family defaults, TOML files, command-line precedence, the saved config."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest

from imgan.errors import UsageError
from imgan.train.config import (
    FAMILIES,
    KINDS,
    UnpairedConfig,
    defaults_for,
    load_config,
    prepare_run,
    resolve,
    save_config,
)


def test_family_defaults_follow_the_papers() -> None:
    esrgan = defaults_for("esrgan")
    assert (esrgan.arch, esrgan.pixel_weight, esrgan.perceptual, esrgan.gan_weight) == ("rrdbnet", 1e-2, 1.0, 5e-3)
    real = defaults_for("realesrgan")
    assert (real.pixel_weight, real.perceptual, real.gan_weight, real.degradation) == (1.0, 1.0, 0.1, "realesrgan")
    assert FAMILIES["realesrgan"].discriminator == "unet"
    assert FAMILIES["esrgan"].adversarial == "relativistic"
    assert defaults_for("srgan").pretrain_steps > 0
    assert FAMILIES["srresnet"].discriminator == "none"


def test_command_line_overrides_the_file_which_overrides_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('data = "imgs"\nlr = 3e-4\nbatch_size = 8\nbetas = [0.5, 0.9]\n')
    config = resolve(defaults_for("esrgan"), load_config(path), {"lr": 1e-3, "batch_size": None})
    assert config.lr == 1e-3  # flag given: wins over the file
    assert config.batch_size == 8  # flag not given (None): the file's value stays
    assert config.betas == (0.5, 0.9)
    assert config.crop == defaults_for("esrgan").crop  # in neither: the family default


def test_list_options_parse_from_comma_separated_flags() -> None:
    config = resolve(defaults_for("esrgan"), {}, {"data": "x", "milestones": "10,20", "betas": "0.9,0.999"})
    assert config.milestones == (10, 20)
    assert config.betas == (0.9, 0.999)


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('data = "x"\nlearning_rate = 1\nbatchsize = 2\n')
    with pytest.raises(UsageError, match="unknown key\\(s\\) batchsize, learning_rate"):
        load_config(path)


def test_wrong_types_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('steps = "many"\n')
    with pytest.raises(UsageError, match="steps must be a whole number"):
        load_config(path)


def test_invalid_toml_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("steps = = 3\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(path)


@pytest.mark.parametrize(("override", "message"), [
    ({"scale": 3}, "rrdbnet supports x2 and x4"),
    ({"crop": 30}, "multiple of 4"),
    ({"schedule": "linear"}, "constant, cosine, step"),
    ({"ema": 1.0}, "0 turns the EMA off"),
    ({"data": ""}, "--data is required"),
])
def test_values_that_cannot_work_are_refused(override: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve(defaults_for("esrgan"), {"data": "x"}, override)


def test_saved_config_reads_back_equal(tmp_path: Path) -> None:
    config = resolve(defaults_for("srgan"), {}, {"data": 'we"ird\\path', "lr": 1e-5, "milestones": "5,9"})
    config = replace(config, out=str(tmp_path / "run"))
    save_config(config, tmp_path / "config.toml")
    again = resolve(defaults_for("srresnet"), load_config(tmp_path / "config.toml"), {})
    assert again == config


def test_new_run_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "something").write_text("x")
    with pytest.raises(UsageError, match="--resume"):
        prepare_run("srresnet", config_file=None, resume=None, overrides={"data": "x", "out": str(run_dir)})


def test_default_run_folder_names_family_and_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = prepare_run("srgan", config_file=None, resume=None, overrides={"data": "x", "scale": 2})
    assert Path(config.out) == Path("runs/srgan-x2")


def test_resume_reads_the_run_config_and_takes_flag_overrides(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = replace(resolve(defaults_for("esrgan"), {}, {"data": "x", "steps": 10}), out=str(run_dir))
    save_config(first, run_dir / "config.toml")
    resumed = prepare_run(None, config_file=None, resume=str(run_dir), overrides={"steps": 20, "lr": None})
    assert resumed == replace(first, steps=20)
    with pytest.raises(UsageError, match="trains esrgan, not srgan"):
        prepare_run("srgan", config_file=None, resume=str(run_dir), overrides={})
    with pytest.raises(UsageError, match="--blocks cannot change"):
        prepare_run(None, config_file=None, resume=str(run_dir), overrides={"blocks": 2})


def test_train_help_shows_family_defaults_without_importing_torch() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom imgan.cli import app\nsys.argv = ['imgan', 'train', 'esrgan', '--help']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"COLUMNS": "200", "PATH": ""})
    assert "--pretrain-steps" in result.stdout and "(default: 0.005)" in result.stdout  # ESRGAN's GAN weight
    assert result.stdout.strip().endswith("NO-TORCH")


def test_translation_decays_over_the_second_half_of_any_length() -> None:
    pix2pix = prepare_run("pix2pix", config_file=None, resume=None, overrides={"edges_from": "x", "steps": 20})
    assert pix2pix.decay_steps == 10
    cyclegan = prepare_run("cyclegan", config_file=None, resume=None, overrides={"data_a": "a", "data_b": "b"})
    assert (cyclegan.steps, cyclegan.decay_steps) == (200_000, 100_000)  # upstream's 100 + 100 epochs
    given = prepare_run("cyclegan", config_file=None, resume=None,
                        overrides={"data_a": "a", "data_b": "b", "steps": 20, "decay_steps": 3})
    assert given.decay_steps == 3
    aging = prepare_run("aging", config_file=None, resume=None, overrides={"data_young": "y", "data_old": "o"})
    assert aging.decay_steps == 0  # Fast-AgingGAN keeps its rate constant


def test_a_resumed_run_keeps_its_decay_when_steps_grow(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = prepare_run("pix2pix", config_file=None, resume=None,
                        overrides={"edges_from": "x", "steps": 20, "out": str(run_dir)})
    save_config(first, run_dir / "config.toml")
    resumed = prepare_run(None, config_file=None, resume=str(run_dir), overrides={"steps": 40})
    assert (resumed.steps, resumed.decay_steps) == (40, 10)


def test_config_file_holds_the_options_of_its_kind_only(tmp_path: Path) -> None:
    config = resolve(defaults_for("aging"), {}, {"data_young": "y", "data_old": "o", "out": "runs/aging"})
    save_config(config, tmp_path / "config.toml")
    keys = set(load_config(tmp_path / "config.toml"))
    assert keys == {item.name for item in fields(UnpairedConfig)}
    assert "scale" not in keys and "pool_size" in keys and "ema_warmup" in keys
    assert all(defaults_for(name).__class__ in KINDS for name in FAMILIES)


# What the previous version (one flat TrainConfig for every kind) wrote for
# ``imgan train cyclegan --data-a photos --data-b paintings --steps 20 --decay-steps 10 --features 8``.
OLD_CYCLEGAN_RUN = """# imgan train cyclegan: resolved options of this run

family = "cyclegan"
data = ""
data_a = "photos"
data_b = "paintings"
data_young = ""
data_old = ""
edges_from = ""
direction = "AtoB"
val = ""
out = "runs/old"
arch = "cyclegan"
blocks = 9
downs = 8
features = 8
scale = 4
steps = 20
decay_steps = 10
batch_size = 1
load_size = 286
crop = 256
lr = 0.0002
lr_d = 0.0
optimizer = "adam"
betas = [0.5, 0.999]
weight_decay = 0.0
schedule = "constant"
warmup_steps = 0
milestones = []
gamma = 0.5
ema = 0.0
accum = 1
pixel_loss = "l1"
pixel_weight = 1.0
perceptual = 0.0
gan_weight = 1.0
lambda_cycle = 10.0
lambda_identity = 0.5
pool_size = 50
pretrain_steps = 0
degradation = "bicubic"
val_every = 5000
sample_every = 5000
save_every = 5000
log_every = 100
seed = 0
workers = 4
device = "auto"
precision = "auto"
max_side = 0
"""


def test_a_run_directory_of_the_previous_version_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text(OLD_CYCLEGAN_RUN)
    resumed = prepare_run(None, config_file=None, resume=str(run_dir), overrides={"steps": 30})
    expected = resolve(defaults_for("cyclegan"), {}, {
        "data_a": "photos", "data_b": "paintings", "out": str(run_dir), "steps": 30, "decay_steps": 10,
        "features": 8, "workers": 4, "ema_warmup": False})  # as recorded; the EMA goes on without warm-up
    assert resumed == expected
    with pytest.raises(UsageError, match="--features cannot change"):
        prepare_run("cyclegan", config_file=None, resume=str(run_dir), overrides={"features": 16})


def test_a_key_means_the_same_in_every_kind_that_has_it() -> None:
    import typing

    hints = [typing.get_type_hints(kind) for kind in KINDS]
    for name in {item.name for kind in KINDS for item in fields(kind)}:
        assert len({str(kind_hints[name]) for kind_hints in hints if name in kind_hints}) == 1, name
