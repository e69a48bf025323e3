"""The input types a flow may declare, by the names Kestra uses for them."""

from __future__ import annotations

from collections.abc import Mapping

INPUT_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_\-]*)*$"

# Declared spelling -> the type whose rules apply.
INPUT_TYPES: Mapping[str, str] = {
    "STRING": "STRING",
    "INT": "INT",
    "FLOAT": "FLOAT",
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "DATE": "DATE",
    "DATETIME": "DATETIME",
    "TIME": "TIME",
    "DURATION": "DURATION",
    "SELECT": "SELECT",
    "ENUM": "SELECT",
    "MULTISELECT": "MULTISELECT",
    "JSON": "JSON",
    "YAML": "YAML",
    "URI": "URI",
    "EMAIL": "EMAIL",
    "SECRET": "SECRET",
    "ARRAY": "ARRAY",
    "FILE": "FILE",
    "OBJECT": "OBJECT",  # fields of their own (``properties``), each an input spec
    "TABLE": "TABLE",  # rows of ``columns``, each an input spec
}
ITEM_TYPES = frozenset(INPUT_TYPES) - {
    "ARRAY",
    "MULTISELECT",
    "SELECT",
    "ENUM",
    "FILE",
    "OBJECT",
    "TABLE",
}
ORDERED = frozenset({"INT", "FLOAT", "DURATION"})
TEMPORAL = frozenset({"DATE", "DATETIME", "TIME"})
CHOICES = frozenset({"SELECT", "MULTISELECT"})
