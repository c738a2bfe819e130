"""Builds a user task for evoopt's tests (issue 12): small TorchScript models and generated
datasets, as a user would make them in PyTorch. Run with Debian's python3-torch:

    /usr/bin/python3 tests/unit/make_user_task.py OUT_DIR

Writes to OUT_DIR:
  blobs.pt       tensors-format classification data: 4 classes of 1x8x8 uint8 images, each
                 class a bright quadrant on noise (train 2,000, test 400)
  cnn.pt         TorchScript CNN for it (conv 1->4, ReLU, flatten, linear 256->4)
  cnn_b.pt       the same architecture with other saved weights (another file digest)
  wrong_out.pt   the same CNN with 3 outputs (must be refused: the data has 4 classes)
  wrong_in.pt    an MLP expecting 3x8x8 inputs (must be refused: the images have 1 channel)
  tokens.pt      next-token data: a repeating 5-symbol pattern with noise (train 20,000, test 2,000)
  bigram.pt      TorchScript next-token model: embedding 8 -> linear 8 (logits over 8 symbols)
  folder/        image_folder data: folder/{train,test}/<class>/*.png, blobs as 8-bit PNGs
                 (4 classes; 48 training and 16 test images in all)
  linear28.pt    TorchScript linear classifier for 1x28x28 images, 10 classes (idx data)
  linear32.pt    TorchScript linear classifier for 3x32x32 images, 10 classes (cifar data)
"""
import os
import sys

import torch
from torch import nn


class Cnn(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, classes)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class Mlp3(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


class Linear(nn.Module):
    def __init__(self, inputs: int):
        super().__init__()
        self.fc = nn.Linear(inputs, 10)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


class Bigram(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(8, 16)
        self.out = nn.Linear(16, 8)

    def forward(self, x):
        return self.out(self.embed(x))


def blobs(n: int, g: torch.Generator):
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randint(0, 80, (n, 1, 8, 8), generator=g, dtype=torch.int64)
    for k in range(4):
        r, c = divmod(k, 2)
        x[y == k, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 150
    return x.clamp(0, 255).to(torch.uint8), y


def tokens(n: int, g: torch.Generator):
    pattern = torch.tensor([0, 1, 2, 3, 4])
    s = pattern.repeat(n // 5 + 1)[:n].clone()
    noise = torch.rand(n, generator=g) < 0.1
    s[noise] = torch.randint(0, 8, (int(noise.sum()),), generator=g)
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    train_x, train_y = blobs(2000, g)
    test_x, test_y = blobs(400, g)
    torch.save({"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}, os.path.join(out, "blobs.pt"))
    torch.jit.script(Cnn(4)).save(os.path.join(out, "cnn.pt"))
    torch.jit.script(Cnn(4)).save(os.path.join(out, "cnn_b.pt"))
    torch.jit.script(Cnn(3)).save(os.path.join(out, "wrong_out.pt"))
    torch.jit.script(Mlp3()).save(os.path.join(out, "wrong_in.pt"))
    torch.save({"train": tokens(20000, g), "test": tokens(2000, g)}, os.path.join(out, "tokens.pt"))
    torch.jit.script(Bigram()).save(os.path.join(out, "bigram.pt"))
    torch.jit.script(Linear(28 * 28)).save(os.path.join(out, "linear28.pt"))
    torch.jit.script(Linear(3 * 32 * 32)).save(os.path.join(out, "linear32.pt"))
    from PIL import Image

    for part, n in (("train", 48), ("test", 16)):
        x, y = blobs(n, g)
        for i in range(n):
            d = os.path.join(out, "folder", part, "class%d" % int(y[i]))
            os.makedirs(d, exist_ok=True)
            Image.fromarray(x[i, 0].numpy(), mode="L").save(os.path.join(d, "%03d.png" % i))


if __name__ == "__main__":
    main()
