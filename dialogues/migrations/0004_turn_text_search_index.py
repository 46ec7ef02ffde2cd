"""Words in the turns (the dialogue list's text search, `icontains`) found through an index on PostgreSQL.

Django turns `argument__icontains` into `UPPER(argument) LIKE UPPER('%…%')`; a trigram GIN index on that very
expression answers it without reading every turn. pg_trgm is a trusted extension (PostgreSQL 13 and later): the
database owner may create it. SQLite (the embedded mode) has no such index and scans, which is fast enough at its
scale.
"""

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS dialogues_turn_argument_trgm "
    "ON dialogues_turn USING gin ((UPPER(argument::text)) gin_trgm_ops)",
]
DROP = ["DROP INDEX IF EXISTS dialogues_turn_argument_trgm"]


def _run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return apply


class Migration(migrations.Migration):
    dependencies = [("dialogues", "0003_inspection_fields")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP), elidable=False)]
