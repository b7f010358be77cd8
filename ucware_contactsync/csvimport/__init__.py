"""CSV import into phonebooks: formats, reading, and the import itself."""

from .importer import BookResult, CsvImportError, ImportResult, Problem, import_csv, parse

__all__ = ["BookResult", "CsvImportError", "ImportResult", "Problem", "import_csv", "parse"]
