#!/usr/bin/python3
"""Run directories built to inject code into what `evoopt export` writes (export_test.cpp,
export_integration_test.cpp, tests/CMakeLists.txt).

  export_hostile_run.py make DIR GENOME.json [--benign]
      Creates one run directory in DIR (best_genome.json holding GENOME.json's genome,
      config.json with 60 steps, summary.json with three tasks). Its name and the tasks'
      names and labels carry, for each context of a generated file, text that would end it
      and run code: \"\"\" and a newline then a Python statement that creates a marker file
      (MARKERS) in the working directory, ''', a backslash, */ (in a label), newline + #error and
      #include, <script>, LaTeX commands, a carriage return, a bidirectional override. With
      --benign: the same layout with harmless names (for comparing the outputs line by line).

  export_hostile_run.py export EVOOPT GENOME.json FORMAT CLASS OUT
      Makes the hostile run in a fresh temporary directory, runs
      `EVOOPT export <its absolute path> --format FORMAT --class-name CLASS -o OUT`, fails when
      OUT holds that temporary directory's path, and removes the directory.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

# Files the injected Python statements would create in the importer's working directory.
MARKERS = ["pwned-run", "pwned-label", "pwned-task"]


def statement(marker):
    # Closes a docstring, runs a statement at class-body indentation, opens a string again:
    # live code in a file that writes the text unescaped into its class docstring.
    return '"""\n    open("%s", "w").close()\n    """' % marker


HOSTILE = {
    "run": "run" + statement("pwned-run") + " '''\\ #error in the path \u202e\\",  # no */ here: a file name holds no /
    "labels": {
        "a_task": "CIFAR" + statement("pwned-label"),
        "b_task": "x\n#error injected directive\n#include \"/etc/passwd\"\n*/ <script>alert(1)</script> "
                  "$\\input{/etc/passwd}$ %&_#^~{} \r\\",
    },
    # A task without a label: its name is shown.
    "unlabelled": "c" + statement("pwned-task"),
}
BENIGN = {"run": "run", "labels": {"a_task": "CIFAR", "b_task": "Text"}, "unlabelled": "c_task"}


def make(directory, genome_path, benign):
    names = BENIGN if benign else HOSTILE
    run = os.path.join(directory, names["run"])
    os.makedirs(run)
    with open(genome_path) as f:
        genome = json.load(f)
    per_task = {name: {"label": label, "mean": 0.5, "std": 0.01, "accuracy": [0.5, 0.5, 0.5]}
                for name, label in names["labels"].items()}
    per_task[names["unlabelled"]] = {"mean": 0.25, "std": 0.01, "accuracy": [0.25, 0.25, 0.25]}
    files = {
        "best_genome.json": {"format": "evoopt.best_genome", "version": 1, "genome": genome, "validation_fitness": 0.75},
        "config.json": {"steps": 60},
        "summary.json": {"final_test": {"overall_mean": 0.4, "overall_std": 0.02, "per_task": per_task}},
    }
    for name, content in files.items():
        with open(os.path.join(run, name), "w") as f:
            json.dump(content, f)
    return run


def export(evoopt, genome_path, fmt, cls, out):
    tmp = tempfile.mkdtemp(prefix="evoopt-hostile-")
    try:
        run = make(tmp, genome_path, benign=False)
        r = subprocess.run([evoopt, "export", run, "--format", fmt, "--class-name", cls, "-o", out], cwd=tmp)
        if r.returncode != 0:
            sys.exit("export_hostile_run.py: evoopt export failed (exit %d)" % r.returncode)
        with open(out, "rb") as f:
            if tmp.encode() in f.read():
                sys.exit("export_hostile_run.py: %s holds the run's absolute path %s" % (out, tmp))
    finally:
        shutil.rmtree(tmp)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], benign="--benign" in sys.argv[4:])
    elif len(sys.argv) == 7 and sys.argv[1] == "export":
        export(*sys.argv[2:7])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
