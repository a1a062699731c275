"""Measure imgan's text2img default against held-out real data, with a classifier trained on that data.

1. A classifier (``imgan.archs.classifier.GlyphClassifier``: class of 20, foreground colour of 8,
   background of 3) is trained on the "classifier" part of ``heldout.npz`` (MNIST digits and
   Fashion-MNIST items the GAN never saw), each glyph coloured afresh at every epoch, and tested
   on the "test" part, coloured with a fixed seed: its real-data accuracy is the ceiling of what it
   can confirm. It is saved as ``imgan/weights/imgan-text2img-classifier.safetensors`` (float16),
   the extractor of ``imgan eval --features imgan-text2img-classifier``.
2. The model draws ``--per-class`` pictures for each of the 20 classes, from captions in the
   training templates that name the class, a foreground colour and a background (all chosen at
   random, seeded), plus the same number from captions that name the class alone.
3. Reported: class accuracy per class (on captions with colours), colour and background accuracy,
   class accuracy on class-only captions, and FID on the classifier's 128-d features: generated vs
   real test glyphs, next to real vs real (the two halves of the test glyphs, each coloured in its
   own way) at the same count.

Usage: python recipes/text2img_digits/evaluate.py DATA_DIR --model MODEL [--classifier FILE] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colours import BACKGROUNDS, CLASSES, COLOURS, caption, colourise  # noqa: E402

from imgan import fid  # noqa: E402
from imgan.archs.classifier import GlyphClassifier  # noqa: E402
from imgan.tasks import text2img  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "imgan/weights/imgan-text2img-classifier.safetensors"
FG, BG = list(COLOURS), list(BACKGROUNDS)


def coloured(glyphs: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The glyphs in random colours: (N,3,32,32) in [0,1], foreground and background labels."""
    fg = rng.integers(len(FG), size=len(glyphs))
    bg = rng.integers(len(BG), size=len(glyphs))
    images = np.stack([colourise(glyph / 255.0, FG[f], BG[b], rng) for glyph, f, b in zip(glyphs, fg, bg, strict=True)])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), fg, bg


def train_classifier(glyphs: np.ndarray, classes: np.ndarray, *, epochs: int, seed: int) -> GlyphClassifier:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = GlyphClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = epochs * (len(glyphs) // 128)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    labels = torch.from_numpy(classes).long()
    for epoch in range(epochs):
        images, fg, bg = coloured(glyphs, rng)
        # small shifts, so the classifier does not lean on exact positions
        shifts = rng.integers(-2, 3, size=(len(images), 2))
        images = torch.stack([torch.roll(image, (int(dy), int(dx)), dims=(1, 2)) for image, (dy, dx) in
                              zip(images, shifts, strict=True)])
        order = torch.from_numpy(rng.permutation(len(images)))
        model.train()
        for start in range(0, len(order) - 127, 128):
            batch = order[start:start + 128]
            logits = model(images[batch])
            loss = (F.cross_entropy(logits[0], labels[batch]) + F.cross_entropy(logits[1], torch.from_numpy(fg)[batch])
                    + F.cross_entropy(logits[2], torch.from_numpy(bg)[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        print(f"classifier epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}", file=sys.stderr)
    return model.eval()


@torch.no_grad()
def predict(model: GlyphClassifier, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    outputs = [model(images[start:start + 256]) for start in range(0, len(images), 256)]
    return tuple(torch.cat([output[k] for output in outputs]).argmax(1).numpy() for k in range(3))  # type: ignore


def features(model: GlyphClassifier, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model.features(images[start:start + 256]) for start in range(0, len(images), 256)]
                         ).double().numpy()


def fid_of(first: np.ndarray, second: np.ndarray) -> float:
    one = fid.FeatureSet.of(first, extractor="glyphs")
    two = fid.FeatureSet.of(second, extractor="glyphs")
    return fid.frechet_distance(one.mu, one.sigma, two.mu, two.sigma)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--model", help="the text2img model to measure (default: only train and test the classifier)")
    parser.add_argument("--classifier", help="use this classifier instead of training one")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    held = np.load(Path(args.data) / "text2img" / "heldout.npz")
    glyphs, classes, split = held["glyphs"], held["classes"], held["split"]
    train, test = split == "classifier", split == "test"

    started = time.time()
    if args.classifier:
        classifier = GlyphClassifier()
        classifier.load_state_dict({k: v.float() for k, v in load_file(args.classifier).items()})
        classifier.eval()
    else:
        classifier = train_classifier(glyphs[train], classes[train], epochs=args.epochs, seed=0)
        SHIPPED.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in classifier.state_dict().items()}, str(SHIPPED),
                  metadata={"network": "glyph-classifier", "params": json.dumps({}),
                            "classes": json.dumps(list(CLASSES)), "colours": json.dumps(FG),
                            "backgrounds": json.dumps(BG), "source": "recipes/text2img_digits/evaluate.py"})
        classifier = GlyphClassifier()
        classifier.load_state_dict({k: v.float() for k, v in load_file(str(SHIPPED)).items()})
        classifier.eval()
    print(f"classifier ready in {time.time() - started:.0f} s", file=sys.stderr)

    rng = np.random.default_rng(1)
    real, real_fg, real_bg = coloured(glyphs[test], rng)
    real_classes = classes[test]
    predicted = predict(classifier, real)
    real_report = {
        "class_accuracy": float((predicted[0] == real_classes).mean()),
        "per_class": {CLASSES[c]: float((predicted[0][real_classes == c] == c).mean()) for c in range(20)},
        "colour_accuracy": float((predicted[1] == real_fg).mean()),
        "background_accuracy": float((predicted[2] == real_bg).mean()),
        "count": int(len(real)),
    }

    if not args.model:
        print(json.dumps({"real": real_report}, indent=2))
        return
    model = text2img.load_text_model(args.model)
    device = torch.device("cpu")
    generated, gen_classes, gen_fg, gen_bg = [], [], [], []
    plain_images, plain_classes = [], []
    caption_rng = np.random.default_rng(2)
    for label in range(20):
        for k in range(args.per_class):
            fg, bg = int(caption_rng.integers(len(FG))), int(caption_rng.integers(len(BG)))
            text = caption(label, FG[fg], BG[bg], caption_rng)
            encoded = model.vocabulary.encode(text)
            image = text2img.generate(model, encoded, [label * 100_000 + k], truncation=1.0, device=device,
                                      dtype=torch.float32)
            generated.append(image)
            gen_classes.append(label)
            gen_fg.append(fg)
            gen_bg.append(bg)
            plain = model.vocabulary.encode(caption(label, None, None, caption_rng))
            plain_images.append(text2img.generate(model, plain, [label * 100_000 + 50_000 + k], truncation=1.0,
                                                  device=device, dtype=torch.float32))
            plain_classes.append(label)
    generated_images = torch.cat(generated)
    gen_classes_, gen_fg_, gen_bg_ = np.array(gen_classes), np.array(gen_fg), np.array(gen_bg)
    predicted = predict(classifier, generated_images)
    plain_predicted = predict(classifier, torch.cat(plain_images))[0]
    report = {
        "class_accuracy": float((predicted[0] == gen_classes_).mean()),
        "per_class": {CLASSES[c]: float((predicted[0][gen_classes_ == c] == c).mean()) for c in range(20)},
        "colour_accuracy": float((predicted[1] == gen_fg_).mean()),
        "background_accuracy": float((predicted[2] == gen_bg_).mean()),
        "class_only_captions_accuracy": float((plain_predicted == np.array(plain_classes)).mean()),
        "count": int(len(generated_images)),
    }

    # FID on the classifier's features, at equal counts: generated vs real half A; real half B vs real half A.
    real_features = features(classifier, real)
    order = np.random.default_rng(3).permutation(len(real_features))
    half = min(len(order) // 2, len(generated_images))
    real_a, real_b = real_features[order[:half]], real_features[order[half:2 * half]]
    gen_features = features(classifier, generated_images)[np.random.default_rng(4).permutation(
        len(generated_images))[:half]]
    report["fid_generated_vs_real"] = fid_of(gen_features, real_a)
    real_report["fid_real_vs_real"] = fid_of(real_b, real_a)
    report["fid_count"] = int(half)
    results = {"real": real_report, "generated": report, "model": args.model}
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
