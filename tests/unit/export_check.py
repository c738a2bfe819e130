#!/usr/bin/python3
"""Trains with an optimizer exported by `evoopt export --format pytorch` (used by export_integration_test.cpp).

  export_check.py MODULE.py CLASS DATA.json OUT.json [--rest-b]

--rest-b: W and b in two groups, b with "rest": True (an optimizer with two programs).

DATA.json: initial parameters W0 (in x out), b0 (out), batches X (steps x n x in), Y (steps x n x out).
Loss: mean((tanh(X W + b) - Y)^2), float64. OUT.json: the final W and b, and whether a run
that saves the optimizer's state_dict half-way and continues with a new optimizer that
loaded it ends with the same parameters. For a class with eval() and train() (an evaluation
point), also W_x and b_x after eval(), and whether train() put the training weights back.
"""
import importlib.util
import json
import sys

import torch


def load_class(path, name):
    spec = importlib.util.spec_from_file_location("exported_optimizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def train(cls, data, split_at=None, rest_b=False, evaluate=None):
    W = torch.tensor(data["W0"], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(data["b0"], dtype=torch.float64, requires_grad=True)
    X = torch.tensor(data["X"], dtype=torch.float64)
    Y = torch.tensor(data["Y"], dtype=torch.float64)
    make = (lambda: cls([{"params": [W]}, {"params": [b], "rest": True}])) if rest_b else (lambda: cls([W, b]))
    opt = make()
    for k in range(len(X)):
        if split_at is not None and k == split_at:
            saved = opt.state_dict()
            opt = make()
            opt.load_state_dict(saved)
        opt.zero_grad()
        loss = ((torch.tanh(X[k] @ W + b) - Y[k]) ** 2).mean()
        loss.backward()
        opt.step()
    if evaluate is not None:
        trained = (W.detach().clone(), b.detach().clone())
        opt.eval()
        evaluate["W_x"], evaluate["b_x"] = W.detach().tolist(), b.detach().tolist()
        opt.train()
        evaluate["train_restores"] = bool(torch.equal(W, trained[0]) and torch.equal(b, trained[1]))
    return W.detach(), b.detach()


def main():
    module, name, data_path, out_path = sys.argv[1:5]
    rest_b = "--rest-b" in sys.argv[5:]
    cls = load_class(module, name)
    data = json.load(open(data_path))
    evaluated = {} if "eval" in cls.__dict__ else None
    W, b = train(cls, data, rest_b=rest_b, evaluate=evaluated)
    W2, b2 = train(cls, data, split_at=len(data["X"]) // 2, rest_b=rest_b)
    out = {"W": W.tolist(), "b": b.tolist(), "state_dict_resume_equal": bool(torch.equal(W, W2) and torch.equal(b, b2)),
           "torch": torch.__version__}
    if evaluated is not None:
        out.update(evaluated)
    json.dump(out, open(out_path, "w"))


if __name__ == "__main__":
    main()
