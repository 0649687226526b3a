"""Muon (K. Jordan, 2024) for the hidden layers' weights, as bitnetmcu-train's `optimizer: Muon`
(training/optimizer.cpp): Nesterov momentum 0.95, orthogonalized by five quintic Newton-Schulz
steps, scaled by sqrt(max(1, rows/cols)). The classifier and small tensors stay on Adam."""
import torch

MOMENTUM = 0.95
MIN_ELEMENTS = 65


def orthogonalize(g, steps=5):
    """A matrix with the singular vectors of g and singular values close to 1 (0.7..1.2)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float() / (g.norm() + 1e-7)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.t()
    for _ in range(steps):
        gram = x @ x.t()
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.t() if tall else x


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr=0.01):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.flatten(1)
                buf = self.state[p].setdefault("momentum", torch.zeros_like(g))
                buf.mul_(MOMENTUM).add_(g)
                buf.masked_fill_(buf.abs() < 1e-30, 0)  # no subnormals (dead units): slow GEMMs
                update = orthogonalize(g + MOMENTUM * buf)
                scale = max(1.0, g.size(0) / g.size(1)) ** 0.5
                p.add_(update.view_as(p), alpha=-group["lr"] * scale)


class Optimizers:
    """Adam on everything (optimizer: Adam), or Muon on the hidden weights plus Adam on the rest."""

    def __init__(self, model, cfg):
        muon, adam = [], []
        for name, p in model.named_parameters():
            hidden = not name.startswith("fcl") and p.dim() >= 2 and p.numel() >= MIN_ELEMENTS
            (muon if cfg["optimizer"] == "Muon" and hidden else adam).append(p)
        self.base = [(torch.optim.Adam(adam, lr=cfg["learning_rate"]), cfg["learning_rate"])] if adam else []
        if muon:
            self.base.append((Muon(muon, lr=cfg["muon_learning_rate"]), cfg["muon_learning_rate"]))

    def set_schedule(self, factor):
        for opt, rate in self.base:
            for group in opt.param_groups:
                group["lr"] = rate * factor

    def zero_grad(self):
        for opt, _ in self.base:
            opt.zero_grad(set_to_none=True)

    def step(self):
        for opt, _ in self.base:
            opt.step()
