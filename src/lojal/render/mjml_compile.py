"""MJML -> HTML compilers behind one small interface.

`PythonMjml` (the `mjml` 0.12 port, a project dependency) is the default: it installs with the
project everywhere. `NodeMjml` runs the official MJML in one long-lived `node` process; it is
optional (bench/render.py and the fidelity comparison use it when `node` and
`bench/node/node_modules/mjml` exist). See docs/templates.md for the comparison.

Documents reach the compilers with includes already resolved (lojal.render.sources).

The Python port leaves out or breaks a few things official MJML 5 does; `PythonMjml` fills them in
around the port (lojal.render.mjml_port): `<mj-style inline="inline">` is inlined with css-inline
(Jinja tags protected from the HTML parser), an `<mj-font>` that redeclares one of the port's
built-in fonts replaces that font's URL instead of crashing, and the output's malformed Outlook
conditional `<!--[if !mso><!-->` and fractional image `width` attributes are corrected.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Protocol

from mjml import mjml_to_html

from lojal.render import mjml_port


class MjmlCompileError(Exception):
    """The compiler rejected or crashed on a document."""


class MjmlCompiler(Protocol):
    name: str

    def compile(self, mjml: str) -> str:
        """HTML for one self-contained MJML document (no mj-include left)."""
        ...


class PythonMjml:
    name = "mjml (Python port 0.12)"

    def compile(self, mjml: str) -> str:
        prepared = mjml_port.prepare(mjml)
        try:
            result = mjml_to_html(prepared.mjml)
        except Exception as exc:  # the port raises bare ValueError/AssertionError/KeyError on bad input
            raise MjmlCompileError(f"{type(exc).__name__}: {exc}") from exc
        if result.errors:
            raise MjmlCompileError("; ".join(map(str, result.errors)))
        return mjml_port.finish(result.html, prepared)


_NODE_WORKER = r"""
const mjml2html = require('mjml');
const readline = require('readline');
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', async (line) => {
  const { mjml } = JSON.parse(line);
  let reply;
  try {
    const out = await mjml2html(mjml, { validationLevel: 'soft', minify: false, beautify: false });
    reply = { html: out.html, errors: (out.errors || []).map(e => ({ line: e.line, tag: e.tagName, message: e.message })) };
  } catch (e) {
    reply = { error: String(e && e.message || e) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
});
"""

DEFAULT_NODE_MODULES = Path(__file__).resolve().parents[3] / "bench" / "node" / "node_modules"


def node_mjml_available(node_modules: Path = DEFAULT_NODE_MODULES) -> bool:
    return shutil.which("node") is not None and (node_modules / "mjml" / "package.json").is_file()


class NodeMjml:
    """The official MJML, compiled in one persistent node process (one JSON line per document)."""

    def __init__(self, node_modules: Path = DEFAULT_NODE_MODULES):
        if not node_mjml_available(node_modules):
            raise MjmlCompileError(f"official MJML needs `node` and `npm install --prefix {node_modules.parent}`")
        self.version = json.loads((node_modules / "mjml" / "package.json").read_text())["version"]
        self.name = f"mjml {self.version} (official, Node)"
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            ["node", "-e", _NODE_WORKER], cwd=node_modules.parent, text=True, encoding="utf-8",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def compile(self, mjml: str) -> str:
        return self.compile_with_errors(mjml)[0]

    def compile_with_errors(self, mjml: str) -> tuple[str, list[dict]]:
        """HTML and official MJML's validation errors ({line, tag, message}; soft validation)."""
        with self._lock:
            assert self._process.stdin and self._process.stdout
            self._process.stdin.write(json.dumps({"mjml": mjml}) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise MjmlCompileError("the node MJML worker exited")
        reply = json.loads(line)
        if "error" in reply:
            raise MjmlCompileError(reply["error"])
        return reply["html"], reply.get("errors", [])

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()  # type: ignore[union-attr]
            self._process.wait(timeout=10)

    def __enter__(self) -> "NodeMjml":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def compiler_for(setting: str) -> MjmlCompiler:
    """The compiler `config/rendering.yaml` asks for: python (default), official, or auto (official
    when `node` and the pinned `mjml` package are installed, else python)."""
    if setting == "official" or (setting == "auto" and node_mjml_available()):
        return NodeMjml()
    return PythonMjml()
