"""MNIST-format data of SPEC §2: IDX reader (raw or .gz), the antialiased 16x16 downscale and
normalization (the same resize matrix as the C++ trainer), batched augmentation."""
import gzip
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path):
    """An unsigned-byte IDX file (raw, or gzip when `path` or `path + '.gz'` is compressed)."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    start, count = 4 + 4 * ndim, int(np.prod(dims))
    if len(data) != start + count:
        raise ValueError(f"{path}: {len(data) - start} data bytes, dimensions {dims} need {count}")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)


def dataset_dir(data_dir, dataset):
    if dataset == "FashionMNIST":
        local = os.path.join(data_dir, "fashion-mnist")
        return local if os.path.isdir(local) else "/usr/share/datasets/fashion-mnist"
    return os.path.join(data_dir, "mnist")


def load_raw(data_dir, dataset="MNIST", train=False, subset=0):
    """(uint8 images [N, 28, 28], int64 labels [N]) of a split; `subset` > 0 keeps the first N."""
    if dataset not in ("MNIST", "FashionMNIST"):
        raise ValueError(f"dataset {dataset}: the Python scripts read MNIST and Fashion-MNIST only; "
                         "train and export your own data with bitnetmcu-train / bitnetmcu-export")
    folder = dataset_dir(data_dir, dataset)
    images = read_idx(os.path.join(folder, _FILES[train][0]))
    labels = read_idx(os.path.join(folder, _FILES[train][1]))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels")
    if subset > 0:
        images, labels = images[:subset], labels[:subset]
    return images, labels.astype(np.int64)


def resize_matrix(in_size, out_size):
    """[out, in] matrix of PIL's antialiased bilinear filter (triangle widened by in/out)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    m = np.zeros((out_size, in_size))
    for o in range(out_size):
        center = (o + 0.5) * scale
        lo = max(int(center - filterscale + 0.5), 0)
        hi = min(int(center + filterscale + 0.5), in_size)
        for i in range(lo, hi):
            m[o, i] = max(0.0, 1.0 - abs((i - center + 0.5) / filterscale))
        m[o] /= m[o].sum()
    return torch.tensor(m, dtype=torch.float32)


_R = resize_matrix(28, 16)


def downscale_normalize(images28):
    """[N, 1, 28, 28] floats in [0, 1] -> [N, 1, 16, 16], downscaled and MNIST-normalized."""
    r = _R.to(images28.device)
    return (r @ images28 @ r.t() - MNIST_MEAN) / MNIST_STD


def to_unit_tensor(images_uint8):
    return torch.tensor(np.asarray(images_uint8), dtype=torch.float32).div_(255.0).unsqueeze(1)


class Augmenter:
    """SPEC §2 augmentation, a whole batch per call: rotation1 then an affine map (rotation2,
    whole-pixel shift up to 10 %, scale 0.9-1.1) as one grid_sample, then for a random subset an
    elastic displacement (alpha 40, sigma 4). Draws from torch's global generator."""

    part = 1024  # images warped at a time (__call__)

    def __init__(self, cfg):
        self.rotation1, self.rotation2 = cfg["rotation1"], cfg["rotation2"]
        self.elastic_probability = cfg["elastictransformprobability"]
        self.hflip = cfg.get("augmentation_hflip", 0)
        self.mode = cfg.get("augmentation_interpolation", "nearest")  # as the C++ trainer
        x = torch.arange(33, dtype=torch.float64) - 16
        k = torch.exp(-(x * x) / (2 * 4.0 ** 2))
        self.blur = (k / k.sum()).float()

    def __call__(self, raw28):
        n, size = raw28.shape[0], raw28.shape[-1]
        angle = ((torch.rand(n) * 2 - 1) * self.rotation1 + (torch.rand(n) * 2 - 1) * self.rotation2) * math.pi / 180
        shift = torch.round((torch.rand(n, 2) * 2 - 1) * 0.1 * size) * (2.0 / size)
        scale = 0.9 + 0.2 * torch.rand(n)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        # output p samples the source at R(-angle) (p - t) / scale (normalized coordinates)
        theta = torch.stack([torch.stack([cos, sin, -(cos * shift[:, 0] + sin * shift[:, 1])], 1),
                             torch.stack([-sin, cos, -(-sin * shift[:, 0] + cos * shift[:, 1])], 1)], 1)
        mirror = 1 - 2 * (torch.rand(n) < self.hflip).float() if self.hflip > 0 else None
        elastic = None
        if self.elastic_probability > 0:
            elastic = self._elastic(n, size) * (torch.rand(n) < self.elastic_probability).view(n, 1, 1, 1)
        # The random numbers are drawn for the whole batch above; the warp runs in parts of 1024
        # images, whose tensors the allocator reuses (a 4096-image grid is 25 MB, a fresh mmap
        # each call: 106-380 ms against 52 ms, one thread). Images are independent: the same result.
        parts = []
        for i in range(0, n, self.part):
            j = min(i + self.part, n)
            grid = F.affine_grid(theta[i:j], [j - i] + list(raw28.shape[1:]), align_corners=False)
            if mirror is not None:  # mirror: output column x samples the affine image's column -x
                grid = grid * torch.stack([mirror[i:j], torch.ones(j - i)], 1).view(j - i, 1, 1, 2)
            if elastic is not None:
                grid = grid + elastic[i:j]
            out = F.grid_sample(raw28[i:j], grid, mode=self.mode, padding_mode="zeros", align_corners=False)
            parts.append(downscale_normalize(out))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _elastic(self, n, size):
        d = torch.rand(n, 2, size, size) * 2 - 1
        k = self.blur
        pad = k.numel() // 2
        d = F.conv2d(F.pad(d.reshape(-1, 1, size, size), (pad, pad, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        d = F.conv2d(F.pad(d, (0, 0, pad, pad), mode="reflect"), k.view(1, 1, -1, 1))
        # alpha in pixels -> normalized grid units
        return (d.reshape(n, 2, size, size) * 40.0 * 2.0 / size).permute(0, 2, 3, 1)
