import ast, sys
def protocol(path, clsname, newname, attrs="", mixins=()):
    out = [f"class {newname}(Protocol):", f'    """Port implemented by ``{clsname}`` in ``flopex.store``."""', ""]
    if attrs: out.append(attrs)
    for src_path, name in ((path, clsname), *mixins):
        out += _methods(src_path, name)
    return "\n".join(out)


def _methods(path, clsname):
    out = []
    tree = ast.parse(open(path).read())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == clsname:
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and not fn.name.startswith("_"):
                    fn2 = ast.FunctionDef(name=fn.name, args=fn.args, body=([fn.body[0]] if isinstance(fn.body[0], ast.Expr) else []) + [ast.Expr(ast.Constant(...))], decorator_list=[], returns=fn.returns, lineno=1, type_comment=None)
                    out.append("    " + ast.unparse(fn2).replace("\n", "\n    "))
                    out.append("")
    return out
hdr = '''"""Ports of the service layer: what it needs from storage and blobs, as Protocols.

``flopex.store`` implements them with SQLAlchemy Core; the protocols are kept in step with it
(``tests/unit/test_ports.py`` checks the store satisfies them).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from flopex.domain.ledger import Balance, Purpose
from flopex.domain.states import AttemptState, JobState
from flopex.service.records import (
    AccountRec,
    AttemptRec,
    ContractRec,
    Hold,
    IdemRec,
    JobRec,
    LogRec,
    NodeRec,
    OfferRec,
    OutputRec,
    TransferRec,
)


'''
print(hdr + protocol("src/flopex/store/sql_ledger.py", "SqlLedger", "LedgerPort") + "\n\n" +
      protocol("src/flopex/store/sql.py", "SqlTx", "Tx", "    @property\n    def ledger(self) -> LedgerPort:\n        \"\"\"The ledger of this transaction.\"\"\"\n        ...\n", mixins=[("src/flopex/store/sql_log.py", "SqlLog")]) + '''

class Store(Protocol):
    """Transactions over the exchange's state."""

    kind: str

    def write(self) -> AbstractContextManager[Tx]:
        """A write transaction."""
        ...

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only transaction."""
        ...


class BlobStore(Protocol):
    """Content-addressed bytes."""

    def path(self, sha256: str) -> Path:
        """Where a blob lives."""
        ...

    def put(self, sha256: str, data: bytes) -> None:
        """Store bytes under their hash."""
        ...
''')
