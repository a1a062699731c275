"""The batch runner: jobs with named companions, what counts as an input, one outcome per job."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgan.batch import Job, OutputOptions, Result, file_reader, file_writer, plan_jobs, run_jobs
from imgan.errors import UsageError
from imgan.io import Picture
from imgan.paths import Source


def png(path: Path, value: int = 100, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def plan(arguments: list[str | Path], **options: object):  # noqa: ANN201 - (jobs, decided)
    companions = options.pop("companions", {})
    extras = options.pop("extras", ())
    return plan_jobs([str(a) for a in arguments], OutputOptions(**options), scale=2.0, model="m",  # type: ignore[arg-type]
                     companions=companions, extras=extras)  # type: ignore[arg-type]


def run(jobs: list[Job], worker, *, read=None):  # noqa: ANN001, ANN201 - list of outcomes
    written: list[bytes] = []
    return list(run_jobs(jobs, [worker], read=read or file_reader(max_pixels=None, stdin=lambda: b""),
                         write=file_writer(quality=None, stdout=written.append)))


def test_one_companion_file_serves_every_input(tmp_path: Path) -> None:
    a, b, mask = png(tmp_path / "a.png"), png(tmp_path / "b.png"), png(tmp_path / "masks" / "m.png")
    jobs, decided = plan([a, b], companions={"mask": str(mask)})
    assert decided == []
    assert [dict(job.companions) for job in jobs] == [{"mask": mask}, {"mask": mask}]


def test_a_companion_folder_is_matched_by_stem(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    png(photos / "cat.png"), png(photos / "sub" / "dog.jpg")
    cat_mask, dog_mask = png(tmp_path / "masks" / "cat.png"), png(tmp_path / "masks" / "sub" / "dog.png")
    png(tmp_path / "masks" / "dog.png")  # the relative folder wins over the top level
    jobs, decided = plan([photos], companions={"mask": str(tmp_path / "masks")})
    assert decided == []
    assert {job.source.path.name: job.companions["mask"] for job in jobs} == {"cat.png": cat_mask,
                                                                              "dog.jpg": dog_mask}


def test_a_template_without_a_folder_lies_beside_the_image(tmp_path: Path) -> None:
    photo = png(tmp_path / "shots" / "x.png")
    jobs, _ = plan([photo], companions={"mask": "{stem}_mask.png"})
    assert jobs[0].companions["mask"] == tmp_path / "shots" / "x_mask.png"
    jobs, _ = plan([photo], companions={"mask": str(tmp_path / "m" / "{stem}.{ext}")})
    assert jobs[0].companions["mask"] == tmp_path / "m" / "x.png"


def test_a_folder_without_the_stem_fails_that_job_alone_naming_both(tmp_path: Path) -> None:
    a, b = png(tmp_path / "a.png"), png(tmp_path / "b.png")
    png(tmp_path / "masks" / "a.png")
    jobs, decided = plan([a, b], companions={"mask": str(tmp_path / "masks")})
    assert [job.source.path for job in jobs] == [a]
    assert len(decided) == 1 and decided[0].status == "failed"
    assert str(b) in decided[0].error and "masks" in decided[0].error and "b.*" in decided[0].error


def test_a_missing_or_unreadable_companion_fails_its_job_and_the_batch_goes_on(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        png(tmp_path / f"{name}.png")
    png(tmp_path / "a_mask.png", value=255)
    (tmp_path / "c_mask.png").write_bytes(b"not an image")
    jobs, decided = plan([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"],
                         companions={"mask": "{stem}_mask.png"})
    assert decided == []

    def worker(picture: Picture, companions: Mapping[str, Picture]) -> Picture:
        return dataclasses.replace(picture, rgb=picture.rgb * companions["mask"].rgb)

    outcomes = {outcome.job.source.path.name: outcome for outcome in run(jobs, worker)}
    assert outcomes["a.png"].status == "ok"
    assert np.asarray(Image.open(tmp_path / "a_x2.png")).max() == 100
    for name in ("b", "c"):
        error = outcomes[f"{name}.png"].error
        assert outcomes[f"{name}.png"].status == "failed"
        assert error.startswith(str(tmp_path / f"{name}.png")) and f"mask {tmp_path / f'{name}_mask.png'}" in error
        assert "\n" not in error
        assert not (tmp_path / f"{name}_x2.png").exists()


def test_an_output_may_never_land_on_a_companion(tmp_path: Path) -> None:
    photo, mask = png(tmp_path / "p.png"), png(tmp_path / "p_x2.png")
    jobs, decided = plan([photo], companions={"mask": str(mask)}, overwrite=True)
    assert jobs == [] and "never overwrites inputs" in decided[0].error
    assert mask.read_bytes() == png(tmp_path / "again.png").read_bytes()


def test_companions_in_the_input_folder_are_not_inputs(tmp_path: Path) -> None:
    png(tmp_path / "a.png"), png(tmp_path / "a_mask.png")
    jobs, decided = plan([tmp_path], companions={"mask": "{stem}_mask.png"})
    assert [job.source.path.name for job in jobs] == ["a.png"] and decided == []


def test_a_rerun_on_a_folder_does_not_take_its_own_outputs_as_inputs(tmp_path: Path) -> None:
    png(tmp_path / "t.png"), png(tmp_path / "t_x2.png"), png(tmp_path / "t_x2_sketch.png")
    jobs, decided = plan([tmp_path], skip_existing=True, extras=("sketch",))
    assert jobs == []
    assert [(o.job.source.path.name, o.status) for o in decided] == [("t.png", "skipped")]
    jobs, decided = plan([tmp_path], extras=("sketch",))
    assert jobs == [] and len(decided) == 1 and "already exists" in decided[0].error
    # Named on the command line, an output is an input like any other.
    jobs, _ = plan([tmp_path / "t_x2.png"])
    assert [job.target.name for job in jobs] == ["t_x2_x2.png"]


def test_companions_and_stdout_targets_in_json(tmp_path: Path) -> None:
    photo, mask = png(tmp_path / "p.png"), png(tmp_path / "m.png")
    jobs, _ = plan([photo], companions={"mask": str(mask)})
    [outcome] = run(jobs, lambda picture, companions: picture)
    assert outcome.as_json()["mask"] == str(mask)
    assert outcome.as_json()["output"] == str(tmp_path / "p_x2.png")


def test_two_stdins_and_extras_to_stdout_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        plan(["-", "-"])
    with pytest.raises(UsageError, match="sketch"):
        plan([png(tmp_path / "a.png")], out="-", extras=("sketch",))


def test_extras_are_written_beside_the_target(tmp_path: Path) -> None:
    photo = png(tmp_path / "p.png")
    jobs, _ = plan([photo], extras=("sketch",))
    [outcome] = run(jobs, lambda picture, _: Result(picture, {"sketch": picture}))
    assert outcome.status == "ok" and outcome.info["sketch"] == str(tmp_path / "p_x2_sketch.png")
    assert (tmp_path / "p_x2_sketch.png").is_file()


def test_a_worker_error_fails_its_job_with_one_line_and_the_rest_are_written(tmp_path: Path) -> None:
    sources = [png(tmp_path / f"{index}.png", value=index * 20) for index in range(5)]
    jobs, _ = plan(sources)
    seen: list[str] = []
    lock = threading.Lock()

    def worker(picture: Picture, _: object) -> Picture:
        with lock:
            seen.append(picture.name)
        if picture.name.endswith("2.png"):
            raise ValueError("boom\nsecond line")
        return picture

    outcomes = run(jobs, worker)
    assert sorted(o.status for o in outcomes) == ["failed", "ok", "ok", "ok", "ok"]
    [bad] = [o for o in outcomes if o.status == "failed"]
    assert bad.error == f"{sources[2]}: ValueError: boom"
    assert len(seen) == 5 and all((tmp_path / f"{i}_x2.png").exists() for i in (0, 1, 3, 4))


def test_stdin_is_read_once_and_written_to_stdout(tmp_path: Path) -> None:
    data = png(tmp_path / "in.png").read_bytes()
    jobs, _ = plan(["-"])
    assert jobs[0].target is None and jobs[0].source == Source(None)
    written: list[bytes] = []
    outcomes = list(run_jobs(jobs, [lambda picture, _: picture],
                             read=file_reader(max_pixels=None, stdin=lambda: data),
                             write=file_writer(quality=None, stdout=written.append)))
    assert outcomes[0].status == "ok" and written[0].startswith(b"\x89PNG")


def test_tile_progress_hears_every_tile_of_each_input_by_name(tmp_path: Path) -> None:
    import torch

    from imgan.archs.srvgg import SRVGGNetCompact
    from imgan.batch import ImageOptions, Pipeline, process_images
    from imgan.tasks import upscale

    torch.manual_seed(0)
    model = tmp_path / "tiny_x2.pth"
    torch.save({"params": SRVGGNetCompact(num_features=4, num_conv=1, scale=2).state_dict()}, model)
    sources = [png(tmp_path / name, size=(150, 90)) for name in ("a.png", "b.png")]
    heard: dict[str, list[tuple[int, int]]] = {}
    options = ImageOptions(output=OutputOptions(out=str(tmp_path / "out")), tile="64", device="cpu")
    batch = process_images([str(s) for s in sources], options, Pipeline("upscale", str(model), upscale.worker),
                           stdin=lambda: b"", stdout=lambda _: None, stdout_is_terminal=False,
                           tile_progress=lambda name, done, total: heard.setdefault(name, []).append((done, total)))
    assert [outcome.status for outcome in batch.outcomes] == ["ok", "ok"]
    assert set(heard) == {str(s) for s in sources}
    for calls in heard.values():
        total = calls[-1][1]
        assert total > 1 and calls == [(done, total) for done in range(total + 1)]
