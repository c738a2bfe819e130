#!/usr/bin/python3
"""A straightforward PyTorch reference for `evoopt bench workers` (issue 10).

What a user would write in Python to evaluate one optimizer: the same models as evoopt's
presets (`tiny`, `paper`), the data preloaded as uint8 tensors (no DataLoader), batches
drawn from a shuffled permutation, normalised per batch, CIFAR-10 augmented with a 4-pixel
pad + random crop + horizontal flip, Adam (lr 1e-3), then accuracy on `--eval-images`
held-out images in no-grad batches. Runs one after another, with torch's threading on all
cores (torch.set_num_threads(os.cpu_count()) unless --threads is given).

Reads the files evoopt's `data fetch` prepares (DATA_DIR/mnist and fashion_mnist IDX files,
DATA_DIR/cifar10/train.bin in the CIFAR binary layout). Run it with /usr/bin/python3 (Debian
python3-torch). bench/vs_pytorch.sh runs it beside evoopt and prints the ratio.
"""
import argparse
import json
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MEANS = {"mnist": [0.1307], "fashion_mnist": [0.2860], "cifar10": [0.4914, 0.4822, 0.4465]}
STDS = {"mnist": [0.3081], "fashion_mnist": [0.3530], "cifar10": [0.2470, 0.2435, 0.2616]}


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    t = torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8)
    return t.reshape(shape)


def load(task, data_dir):
    """Training images (N, C, H, W) uint8 and labels int64."""
    d = os.path.join(data_dir, task)
    if task == "cifar10":
        raw = torch.frombuffer(bytearray(open(os.path.join(d, "train.bin"), "rb").read()), dtype=torch.uint8).reshape(-1, 3073)
        return raw[:, 1:].reshape(-1, 3, 32, 32).contiguous(), raw[:, 0].long()
    images = read_idx(os.path.join(d, "train-images-idx3-ubyte")).unsqueeze(1).contiguous()
    labels = read_idx(os.path.join(d, "train-labels-idx1-ubyte")).long()
    return images, labels


def make_model(preset, channels, size, classes=10):
    q = size // 4
    if preset == "tiny":
        c1 = 8 if channels == 1 else 16
        return nn.Sequential(nn.Conv2d(channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(c1, 2 * c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(2 * c1 * q * q, classes))
    if channels == 1:
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * q * q, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, classes))
    return nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
                         nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
                         nn.Flatten(), nn.Linear(64 * q * q, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, classes))


def augment(x):
    """4-pixel zero pad, random crop back to size, horizontal flip with probability 1/2."""
    b, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    out = torch.empty_like(x)
    dy = torch.randint(0, 9, (b,)).tolist()
    dx = torch.randint(0, 9, (b,)).tolist()
    flip = (torch.rand(b) < 0.5).tolist()
    for i in range(b):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(2) if flip[i] else crop
    return out


def one_run(task, images, labels, args, seed):
    torch.manual_seed(seed)
    n_eval = args.eval_images
    # Held-out and training images from one fixed shuffle (files may be sorted by class).
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    images, labels = images[perm], labels[perm]
    train_x, train_y = images[n_eval:n_eval + args.train_subset], labels[n_eval:n_eval + args.train_subset]
    eval_x, eval_y = images[:n_eval], labels[:n_eval]
    mean = torch.tensor(MEANS[task]).view(1, -1, 1, 1)
    std = torch.tensor(STDS[task]).view(1, -1, 1, 1)
    norm = lambda u8: (u8.float() / 255.0 - mean) / std
    model = make_model(args.model, images.shape[1], images.shape[2])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    t0 = time.perf_counter()
    order, pos = torch.randperm(len(train_x)), 0
    for _ in range(args.steps):
        if pos + args.batch > len(order):
            order, pos = torch.randperm(len(train_x)), 0
        idx = order[pos:pos + args.batch]
        pos += args.batch
        xb = train_x[idx]
        if task == "cifar10":
            xb = augment(xb)
        loss = F.cross_entropy(model(norm(xb)), train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, n_eval, 250):
            correct += (model(norm(eval_x[s:s + 250])).argmax(1) == eval_y[s:s + 250]).sum().item()
    return time.perf_counter() - t0, correct / n_eval, loss.item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("EVOOPT_DATA_DIR", "data"))
    p.add_argument("--tasks", nargs="+", default=["mnist", "fashion_mnist", "cifar10"])
    p.add_argument("--model", default="paper", choices=["tiny", "paper"])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--train-subset", type=int, default=15000)
    p.add_argument("--eval-images", type=int, default=5000)
    p.add_argument("--runs", type=int, default=1, help="runs per task")
    p.add_argument("--threads", type=int, default=0, help="0: all cores")
    p.add_argument("--out", help="write the result as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count())
    rows, total_s, total_runs = [], 0.0, 0
    for task in args.tasks:
        images, labels = load(task, args.data_dir)
        for r in range(args.runs):
            secs, acc, loss = one_run(task, images, labels, args, seed=r)
            rows.append({"task": task, "seconds": secs, "accuracy": acc, "final_loss": loss})
            total_s += secs
            total_runs += 1
            print(f"{task:<14} run {r}: {secs:7.1f} s  accuracy {acc:.4f}  loss {loss:.4f}", flush=True)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "model": args.model, "steps": args.steps,
              "batch": args.batch, "train_subset": args.train_subset, "eval_images": args.eval_images,
              "runs": rows, "seconds": total_s, "runs_per_hour": 3600.0 * total_runs / total_s}
    print(f"reference: torch {torch.__version__}, {torch.get_num_threads()} threads, {total_runs} runs in {total_s:.1f} s: "
          f"{result['runs_per_hour']:.1f} runs/hour")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
