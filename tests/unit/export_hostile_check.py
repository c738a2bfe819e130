#!/usr/bin/python3
"""Imports and trains with a PyTorch optimizer exported from a hostile run directory
(export_hostile_run.py); used by export_test.cpp.

  export_hostile_check.py MODULE.py CLASS DATA.json OUT.json

Fails (exit 1, one line) unless the module's syntax tree holds exactly what `evoopt export`
writes (the module docstring, import math, import torch, _schedule_factor,
_nesterov_coefficients, and CLASS with its docstring, __init__ and step), the class
docstring still shows the injected text as data, and importing it creates none of
export_hostile_run.MARKERS in the working directory. Then writes OUT.json
as export_check.py does.
"""
import ast
import json
import os
import sys

import export_check
import export_hostile_run


def fail(message):
    sys.exit("export_hostile_check.py: " + message)


def kinds(body):
    out = []
    for node in body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            out.append("docstring")
        elif isinstance(node, ast.Import):
            out.append("import " + ",".join(a.name for a in node.names))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.append(node.name)
        else:
            out.append(type(node).__name__ + " at line %d" % node.lineno)
    return out


def check_tree(path, name):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    expected = ["docstring", "import math", "import torch", "_schedule_factor", "_nesterov_coefficients", name]
    if kinds(tree.body) != expected:
        fail("module statements %s, expected %s" % (kinds(tree.body), expected))
    cls = tree.body[-1]
    if kinds(cls.body) != ["docstring", "__init__", "step"]:
        fail("class statements %s, expected docstring, __init__, step" % kinds(cls.body))
    doc = ast.get_docstring(cls, clean=False)
    for marker in export_hostile_run.MARKERS:
        if marker not in doc:
            fail("the class docstring lost the text naming %s" % marker)
    for line in doc.splitlines():
        if line.strip().startswith(("open(", "#", "import")):
            fail("a docstring line starts like code: %r" % line)


def main():
    module, name, data_path, out_path = sys.argv[1:5]
    try:
        cls = export_check.load_class(module, name)
    except Exception as e:
        fail("%s does not import: %s: %s" % (module, type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
    finally:
        made = [m for m in export_hostile_run.MARKERS if os.path.exists(m)]
        if made:
            fail("importing the module ran injected code: it created %s in %s" % (made, os.getcwd()))
    check_tree(module, name)
    with open(data_path) as f:
        data = json.load(f)
    W, b = export_check.train(cls, data)
    W2, b2 = export_check.train(cls, data, split_at=len(data["X"]) // 2)
    with open(out_path, "w") as f:
        json.dump({"W": W.tolist(), "b": b.tolist(), "state_dict_resume_equal": bool(export_check.torch.equal(W, W2) and export_check.torch.equal(b, b2))}, f)


if __name__ == "__main__":
    main()
