#!/usr/bin/env python3
"""PyTorch side of the checkpoint-exchange check (Tests/TrainingTests/PyTorchInteropTests.swift).

  eval:  load a .safetensors state dict into the guide's model class and write its predictions
         on the first N CIFAR-10 test images (normalize 0.5/0.5, as SwiftCNN's default) as JSON.
  train: train the guide's model a few Adam steps in PyTorch and save its state_dict as safetensors.

The model classes are the PyTorch CIFAR-10 guide's `CNN` and `OptimizedCNN`, verbatim, and
PyTorch twins of SwiftCNN's other zoo models (`speedrun`, `lite`, `resnet8`; Sources/NN/Models.swift;
`mobilenetv2`, `shufflenetv2` after torchvision's classes; Sources/NN/ModelsLightweight.swift)
with the same module names, so that every zoo model's state dict loads strictly on both sides.
"""
import argparse, json, os, sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 8 * 8, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 64 * 8 * 8)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


class OptimizedCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.Dropout(0.25), nn.MaxPool2d(2))
        self.fc = nn.Sequential(nn.Linear(64 * 8 * 8, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10))

    def forward(self, x):
        x = self.conv1(x)
        x = self.conv2(x)
        return self.fc(x.view(x.size(0), -1))


class Speedrun(nn.Module):
    """ModelKind.speedrun: conv 64, three conv-pool-BN-ReLU-conv-BN-ReLU blocks, global max pool."""
    def __init__(self, classes=10):
        super().__init__()
        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(cout),
                                 nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.layers = nn.Sequential(block(64, 128), block(128, 256), block(256, 256))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(256, classes, bias=False)

    def forward(self, x):
        return self.head(self.pool(self.layers(self.stem(x))).flatten(1))


class Lite(nn.Module):
    """ModelKind.lite."""
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class Residual(nn.Module):
    """SwiftCNN's Residual: body(x) + shortcut(x), identity when there is no shortcut."""
    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (self.shortcut(x) if self.shortcut is not None else x)


class ResNet8(nn.Module):
    """ModelKind.resnet8: stem 32, residual stages 32/64/128 (1x1 projection shortcuts), global average pool."""
    def __init__(self, classes=10):
        super().__init__()
        def basic(cin, cout, stride):
            body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
            shortcut = None
            if stride != 1 or cin != cout:
                shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            return nn.Sequential(Residual(body, shortcut), nn.ReLU())
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.layer1 = basic(32, 32, 1)
        self.layer2 = basic(32, 64, 2)
        self.layer3 = basic(64, 128, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


def conv_bn_relu(cin, cout, k, stride=1, groups=1):
    """torchvision's ConvBNReLU (ReLU for ReLU6, as SwiftCNN's mobilenetv2)."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class InvertedResidual(nn.Module):
    """torchvision.models.mobilenetv2.InvertedResidual: expand 1x1, depthwise 3x3, linear 1x1 bottleneck."""
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        self.use_res = stride == 1 and cin == cout
        layers = [conv_bn_relu(cin, hidden, 1)] if t != 1 else []
        layers += [conv_bn_relu(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """ModelKind.mobilenetv2: torchvision's MobileNetV2 for 32x32 (stem stride 1, second stage stride 1, ReLU)."""
    def __init__(self, classes=10):
        super().__init__()
        table = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        features, cin = [conv_bn_relu(3, 32, 3)], 32
        for t, c, n, s in table:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(conv_bn_relu(cin, 1280, 1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


def channel_shuffle(x, groups):
    n, c, h, w = x.size()
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(nn.Module):
    """torchvision.models.shufflenetv2.InvertedResidual."""
    def __init__(self, inp, oup, stride):
        super().__init__()
        bf = oup // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
                                         nn.Conv2d(inp, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU())
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else bf, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU(),
            nn.Conv2d(bf, bf, 3, stride, 1, groups=bf, bias=False), nn.BatchNorm2d(bf),
            nn.Conv2d(bf, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU())

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ModelKind.shufflenetv2: torchvision's ShuffleNetV2 1.0x for 32x32 (stem stride 1, no max pool)."""
    def __init__(self, classes=10):
        super().__init__()
        widths = [24, 116, 232, 464, 1024]
        self.conv1 = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        cin = widths[0]
        for k, n in enumerate([4, 8, 4]):
            cout = widths[k + 1]
            setattr(self, f"stage{k + 2}", nn.Sequential(ShuffleUnit(cin, cout, 2), *[ShuffleUnit(cout, cout, 1) for _ in range(n - 1)]))
            cin = cout
        self.conv5 = nn.Sequential(nn.Conv2d(cin, widths[4], 1, bias=False), nn.BatchNorm2d(widths[4]), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[4], classes)

    def forward(self, x):
        x = self.stage4(self.stage3(self.stage2(self.conv1(x))))
        return self.fc(self.pool(self.conv5(x)).flatten(1))


class PatchWhitening(nn.Module):
    """SwiftCNN's frozen 2x2 patch-whitening layer: its filters are a buffer (fitted to the data, never trained),
    followed by a trainable bias (airbench's whitening convolution has one)."""
    def __init__(self, channels=3, kernel=2):
        super().__init__()
        d = channels * kernel * kernel
        self.register_buffer("weight", torch.zeros(2 * d, channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(2 * d))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)


class FastNet(nn.Module):
    """ModelKind.fast: airbench's net (whitening with a bias, GELU, conv-pool-BN-GELU-conv-BN-GELU blocks 64/256/256,
    global max pool, linear, x1/9; BatchNorm momentum 0.4 in PyTorch's sense, eps 1e-12, scale frozen at 1)."""
    def __init__(self, classes=10):
        super().__init__()
        def bn(c):
            b = nn.BatchNorm2d(c, momentum=0.4, eps=1e-12)
            b.weight.requires_grad = False
            return b
        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), bn(cout), nn.GELU(),
                                 nn.Conv2d(cout, cout, 3, padding=1, bias=False), bn(cout), nn.GELU())
        self.whiten = PatchWhitening()
        self.act = nn.GELU()
        self.layers = nn.Sequential(block(24, 64), block(64, 256), block(256, 256))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(256, classes, bias=False)

    def forward(self, x):
        return self.head(self.pool(self.layers(self.act(self.whiten(x)))).flatten(1)) * (1 / 9)


MODELS = {"cnn": CNN, "optimized": OptimizedCNN, "speedrun": Speedrun, "lite": Lite, "resnet8": ResNet8,
          "mobilenetv2": MobileNetV2, "shufflenetv2": ShuffleNetV2, "fast": FastNet}


def read_cifar(path, limit):
    raw = np.fromfile(path, dtype=np.uint8)
    rec = raw.reshape(-1, 3073)[:limit]
    labels = rec[:, 0].astype(np.int64)
    x = rec[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    x = (x - 0.5) / 0.5
    return torch.from_numpy(x), torch.from_numpy(labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["eval", "train"])
    ap.add_argument("--model", default="optimized", choices=list(MODELS))
    ap.add_argument("--data", required=True, help="cifar-10-batches-bin folder")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--weights")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    torch.manual_seed(0)
    model = MODELS[a.model]()
    if a.command == "eval":
        state = load_file(a.weights)
        model.load_state_dict(state, strict=True)
        model.eval()
        x, y = read_cifar(os.path.join(a.data, "test_batch.bin"), a.limit)
        with torch.no_grad():
            logits = torch.cat([model(x[i:i + 250]) for i in range(0, len(x), 250)])
        pred = logits.argmax(1)
        acc = (pred == y).float().mean().item()
        loss = F.cross_entropy(logits, y).item()
        counters = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
        json.dump({"accuracy": acc, "loss": loss, "predictions": pred.tolist(), "state_dict": list(model.state_dict().keys()),
                   "num_batches_tracked": counters}, open(a.out, "w"))
        print(f"pytorch eval of {a.weights}: accuracy {acc:.4f} on {len(y)} images")
    else:
        x, y = read_cifar(os.path.join(a.data, "data_batch_1.bin"), a.limit)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        model.train()
        for s in range(a.steps):
            i = (s * 64) % (len(x) - 64)
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
            loss.backward()
            opt.step()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, a.out)
        print(f"pytorch trained {a.model} for {a.steps} steps, last loss {loss.item():.4f}; saved {a.out}")


if __name__ == "__main__":
    sys.exit(main())
