"""Training options: family defaults, TOML files, command-line precedence, the saved config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from imgan.errors import UsageError
from imgan.train.config import (
    FAMILIES,
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
