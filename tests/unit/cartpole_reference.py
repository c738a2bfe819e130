#!/usr/bin/env python3
"""Independent float64 reference of Gymnasium's CartPole-v1 for tests/unit/cartpole_test.cpp.

Written from the published source, gymnasium/envs/classic_control/cartpole.py (CartPoleEnv.step,
kinematics_integrator "euler") and CartPole-v1's registration (TimeLimit, max_episode_steps=500),
in plain Python floats (IEEE double), no numpy.

    cartpole_reference.py POLICY ARG X X_DOT THETA THETA_DOT

runs one episode from the given state until it terminates or is truncated and prints JSON:
{"steps": [{"action": a, "state": [x, x_dot, theta, theta_dot], "terminated": b, "truncated": b}, ...]}
with the state after each step. POLICY picks the actions:
  lcg SEED  action = the top bit of a 64-bit LCG (Knuth's MMIX constants), advanced before each step
  pd GAIN   action = 1 if theta + GAIN * theta_dot + 0.01 * x + 0.1 * x_dot > 0 else 0 (keeps the pole up)
"""
import json
import math
import sys

GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD_RADIANS = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
MAX_EPISODE_STEPS = 500


def step(state, action):
    x, x_dot, theta, theta_dot = state
    force = FORCE_MAG if action == 1 else -FORCE_MAG
    costheta = math.cos(theta)
    sintheta = math.sin(theta)
    temp = (force + POLEMASS_LENGTH * theta_dot**2 * sintheta) / TOTAL_MASS
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (LENGTH * (4.0 / 3.0 - MASSPOLE * costheta**2 / TOTAL_MASS))
    xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
    x, x_dot, theta, theta_dot = (x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc)
    terminated = x < -X_THRESHOLD or x > X_THRESHOLD or theta < -THETA_THRESHOLD_RADIANS or theta > THETA_THRESHOLD_RADIANS
    return (x, x_dot, theta, theta_dot), terminated


def main():
    policy, arg = sys.argv[1], sys.argv[2]
    state = tuple(float(v) for v in sys.argv[3:7])
    lcg = int(arg) % 2**64 if policy == "lcg" else 0
    steps = []
    while True:
        if policy == "lcg":
            lcg = (6364136223846793005 * lcg + 1442695040888963407) % 2**64
            action = lcg >> 63
        elif policy == "pd":
            x, x_dot, theta, theta_dot = state
            action = 1 if theta + float(arg) * theta_dot + 0.01 * x + 0.1 * x_dot > 0 else 0
        else:
            raise SystemExit("unknown policy " + policy)
        state, terminated = step(state, action)
        truncated = len(steps) + 1 >= MAX_EPISODE_STEPS
        steps.append({"action": action, "state": list(state), "terminated": terminated, "truncated": truncated})
        if terminated or truncated:
            break
    json.dump({"steps": steps}, sys.stdout)


if __name__ == "__main__":
    main()
