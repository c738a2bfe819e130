#!/usr/bin/env python3
"""Float64 references of NAdamW, NAdam, AdEMAMix, Schedule-Free AdamW and Muon, written from the
published algorithms in plain Python (floats and lists, no torch), for optimizers_test.cpp.

    optim_reference.py ALGORITHM STEPS '{"lr": ..., ...}'

prints, as JSON, the parameters after every step (and for schedule_free also x, the point
the model is evaluated at) on the problem below. The problem: tensors of the shapes in
SHAPES (a wide and a tall matrix, a conv kernel, a vector), gradient at step t (1-based)
g = s*(p - target) + 0.3*sin(0.7*t + 1.3*i + 0.1*k) for element i of tensor k, where
s = 0.5 + 0.5*(i % 5) and target = cos(i + k); the start is p0 = 0.5*sin(1.7*i + k).
optimizers_test.cpp builds the same problem in C++.

Sources (../shared/docs/REFERENCES.md):
- NAdamW: MLCommons AlgoPerf, reference_algorithms/paper_baselines/nadamw (the Nesterov
  look-ahead beta1*m + (1-beta1)*g in AdamW's place).
- NAdam: Dozat 2016 as torch.optim.NAdam documents it (momentum decay psi = 0.004,
  mu_t = beta1*(1 - 0.5*0.96**(t*psi)), L2 weight decay added to the gradient).
- AdEMAMix: Pagliardini et al. 2024, Algorithm 1; alpha and beta3 warmup as in apple/ml-ademamix.
- Schedule-Free AdamW: Defazio et al. 2024, Algorithm 1 (x, y, z kept explicitly here), with
  the denominator sqrt(v/(1-beta2^t)) + eps and weights (max lr so far)^2 of
  facebookresearch/schedule_free's AdamWScheduleFree.
- Muon: Jordan et al. 2024 (KellerJordan/Muon): Nesterov momentum, Newton-Schulz with
  (3.4445, -4.7750, 2.0315) on the update viewed as (rows, numel/rows), scale
  sqrt(max(1, rows/cols)); AdamW (the authors' adam_update) for the tensors not in the
  Muon group.
"""
import json
import math
import sys

SHAPES = [[3, 4], [5, 3], [2, 2, 2, 2], [5]]


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def start():
    return [[0.5 * math.sin(1.7 * i + k) for i in range(numel(s))] for k, s in enumerate(SHAPES)]


def grad(params, t):
    out = []
    for k, p in enumerate(params):
        out.append([(0.5 + 0.5 * (i % 5)) * (x - math.cos(i + k)) + 0.3 * math.sin(0.7 * t + 1.3 * i + 0.1 * k) for i, x in enumerate(p)])
    return out


def nadamw(steps, h):
    lr, b1, b2, eps, wd = h["lr"], h["beta1"], h["beta2"], h["eps"], h["weight_decay"]
    p = start()
    m = [[0.0] * len(x) for x in p]
    v = [[0.0] * len(x) for x in p]
    out = []
    for t in range(1, steps + 1):
        g = grad(p, t)
        for k in range(len(p)):
            for i in range(len(p[k])):
                m[k][i] = b1 * m[k][i] + (1 - b1) * g[k][i]
                v[k][i] = b2 * v[k][i] + (1 - b2) * g[k][i] ** 2
                look_ahead = b1 * m[k][i] + (1 - b1) * g[k][i]
                m_hat = look_ahead / (1 - b1 ** t)
                v_hat = v[k][i] / (1 - b2 ** t)
                p[k][i] = p[k][i] - lr * wd * p[k][i] - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append({"p": [list(x) for x in p]})
    return out


def nadam(steps, h):
    lr, b1, b2, eps, wd = h["lr"], h["beta1"], h["beta2"], h["eps"], h["weight_decay"]
    psi = 0.004
    p = start()
    m = [[0.0] * len(x) for x in p]
    v = [[0.0] * len(x) for x in p]
    mu_product = 1.0
    out = []
    for t in range(1, steps + 1):
        g = grad(p, t)
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product *= mu
        for k in range(len(p)):
            for i in range(len(p[k])):
                gi = g[k][i] + wd * p[k][i]
                m[k][i] = b1 * m[k][i] + (1 - b1) * gi
                v[k][i] = b2 * v[k][i] + (1 - b2) * gi * gi
                m_hat = mu_next * m[k][i] / (1 - mu_product * mu_next) + (1 - mu) * gi / (1 - mu_product)
                v_hat = v[k][i] / (1 - b2 ** t)
                p[k][i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append({"p": [list(x) for x in p]})
    return out


def ademamix(steps, h):
    lr, b1, b2, b3_end, a_end, T, eps, wd = (h[k] for k in ("lr", "beta1", "beta2", "beta3", "alpha", "warmup", "eps", "weight_decay"))

    def alpha(t):
        return a_end * t / T if t < T else a_end

    def beta3(t):
        if t >= T:
            return b3_end
        half_life = lambda b: math.log(0.5) / math.log(b + 1e-8) - 1
        a = t / T
        return 0.5 ** (1 / ((1 - a) * half_life(b1) + a * half_life(b3_end) + 1))

    p = start()
    m1 = [[0.0] * len(x) for x in p]
    m2 = [[0.0] * len(x) for x in p]
    nu = [[0.0] * len(x) for x in p]
    out = []
    for t in range(1, steps + 1):
        g = grad(p, t)
        b3, a = beta3(t), alpha(t)
        for k in range(len(p)):
            for i in range(len(p[k])):
                m1[k][i] = b1 * m1[k][i] + (1 - b1) * g[k][i]
                m2[k][i] = b3 * m2[k][i] + (1 - b3) * g[k][i]
                nu[k][i] = b2 * nu[k][i] + (1 - b2) * g[k][i] ** 2
                m1_hat = m1[k][i] / (1 - b1 ** t)
                nu_hat = nu[k][i] / (1 - b2 ** t)
                p[k][i] = p[k][i] - lr * ((m1_hat + a * m2[k][i]) / (math.sqrt(nu_hat) + eps) + wd * p[k][i])
        out.append({"p": [list(x) for x in p]})
    return out


def schedule_free(steps, h):
    lr, b1, b2, eps, wd, warmup = (h[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay", "warmup_steps"))
    x = start()
    z = [list(r) for r in x]
    v = [[0.0] * len(r) for r in x]
    weight_sum, lr_max = 0.0, 0.0
    out = []
    for t in range(1, steps + 1):
        y = [[(1 - b1) * z[k][i] + b1 * x[k][i] for i in range(len(x[k]))] for k in range(len(x))]
        g = grad(y, t)
        gamma = lr * min(1.0, t / warmup) if warmup > 0 else lr
        lr_max = max(lr_max, gamma)
        w = lr_max ** 2
        weight_sum += w
        c = w / weight_sum
        for k in range(len(x)):
            for i in range(len(x[k])):
                v[k][i] = b2 * v[k][i] + (1 - b2) * g[k][i] ** 2
                u = g[k][i] / (math.sqrt(v[k][i] / (1 - b2 ** t)) + eps) + wd * y[k][i]
                z[k][i] = z[k][i] - gamma * u
                x[k][i] = (1 - c) * x[k][i] + c * z[k][i]
        y_next = [[(1 - b1) * z[k][i] + b1 * x[k][i] for i in range(len(x[k]))] for k in range(len(x))]
        out.append({"p": y_next, "x": [list(r) for r in x]})
    return out


def matmul(a, b):
    return [[sum(a[i][l] * b[l][j] for l in range(len(b))) for j in range(len(b[0]))] for i in range(len(a))]


def transpose(a):
    return [list(r) for r in zip(*a)]


def newton_schulz(flat, rows, steps):
    cols = len(flat) // rows
    X = [flat[r * cols:(r + 1) * cols] for r in range(rows)]
    tall = rows > cols
    if tall:
        X = transpose(X)
    norm = math.sqrt(sum(e * e for r in X for e in r))
    X = [[e / (norm + 1e-7) for e in r] for r in X]
    a, b, c = 3.4445, -4.7750, 2.0315
    for _ in range(steps):
        A = matmul(X, transpose(X))
        AA = matmul(A, A)
        B = [[b * A[i][j] + c * AA[i][j] for j in range(len(A))] for i in range(len(A))]
        BX = matmul(B, X)
        X = [[a * X[i][j] + BX[i][j] for j in range(len(X[0]))] for i in range(len(X))]
    if tall:
        X = transpose(X)
    return [e for r in X for e in r]


def muon(steps, h):
    lr, mom, nesterov, ns, wd = h["lr"], h["momentum"], h["nesterov"], h["ns_steps"], h["weight_decay"]
    alr, ab1, ab2, aeps, awd = h["adamw_lr"], h["adamw_beta1"], h["adamw_beta2"], h["adamw_eps"], h["adamw_weight_decay"]
    in_muon = [len(s) >= 2 for s in SHAPES]
    p = start()
    buf = [[0.0] * len(x) for x in p]
    m = [[0.0] * len(x) for x in p]
    v = [[0.0] * len(x) for x in p]
    out = []
    for t in range(1, steps + 1):
        g = grad(p, t)
        for k in range(len(p)):
            if in_muon[k]:
                buf[k] = [mom * b + (1 - mom) * gi for b, gi in zip(buf[k], g[k])]
                u = [(1 - mom) * gi + mom * b for b, gi in zip(buf[k], g[k])] if nesterov else list(buf[k])
                rows = SHAPES[k][0]
                cols = len(u) // rows
                o = newton_schulz(u, rows, ns)
                scale = math.sqrt(max(1.0, rows / cols))
                p[k] = [pi * (1 - lr * wd) - lr * scale * oi for pi, oi in zip(p[k], o)]
            else:
                for i in range(len(p[k])):
                    m[k][i] = ab1 * m[k][i] + (1 - ab1) * g[k][i]
                    v[k][i] = ab2 * v[k][i] + (1 - ab2) * g[k][i] ** 2
                    m_hat = m[k][i] / (1 - ab1 ** t)
                    v_hat = v[k][i] / (1 - ab2 ** t)
                    p[k][i] = p[k][i] * (1 - alr * awd) - alr * m_hat / (math.sqrt(v_hat) + aeps)
        out.append({"p": [list(x) for x in p]})
    return out


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    algorithm, steps, h = argv[0], int(argv[1]), json.loads(argv[2])
    fn = {"nadamw": nadamw, "nadam": nadam, "ademamix": ademamix, "schedule_free": schedule_free, "muon": muon}[algorithm]
    json.dump(fn(steps, h), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
